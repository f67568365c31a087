import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runWithTenant } from '../src/context/index.js'
import { withTenantClient } from '../src/entries/pg.js'
import { InvalidTenantIdError, MissingTenantError } from '../src/errors/index.js'
import { notOnCitus, RAW_FANS_OUT } from './helpers/citus.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'
import { type RlsFixture, setupRlsFixture } from './rls-fixture.js'

let db: TestDatabase
let fx: RlsFixture

beforeAll(async () => {
  db = await createTestDatabase('pg_helper')
  fx = await setupRlsFixture(db)
})
afterAll(async () => {
  await fx.cleanup()
})

const names = (rows: { name: string }[]) => rows.map((r) => r.name).sort()

describe('rowtenancy/pg withTenantClient', () => {
  notOnCitus(RAW_FANS_OUT)(
    'binds the given tenant (or the current one) for raw pg queries',
    async () => {
      const pool = fx.runtimePool()
      const one = await withTenantClient(
        pool,
        async (c) => (await c.query('select name from accounts')).rows,
        {
          tenantId: 1,
        },
      )
      expect(names(one)).toEqual(['a1', 'a2'])
      const two = await runWithTenant(2, () =>
        withTenantClient(pool, async (c) => (await c.query('select name from accounts')).rows),
      )
      expect(names(two)).toEqual(['b1'])
    },
  )

  notOnCitus(RAW_FANS_OUT)(
    'commits on success, rolls back on error, and the pooled client (max 1) comes back clean',
    async () => {
      const pool = fx.runtimePool(1)
      await withTenantClient(
        pool,
        (c) => c.query(`insert into accounts (tenant_id, name) values (1, 'kept')`),
        { tenantId: 1 },
      )
      await expect(
        withTenantClient(
          pool,
          async (c) => {
            await c.query(`insert into accounts (tenant_id, name) values (1, 'lost')`)
            throw new Error('boom')
          },
          { tenantId: 1 },
        ),
      ).rejects.toThrow('boom')
      // another tenant's row fails WITH CHECK
      await expect(
        withTenantClient(
          pool,
          (c) => c.query(`insert into accounts (tenant_id, name) values (2, 'x')`),
          {
            tenantId: 1,
          },
        ),
      ).rejects.toMatchObject({ code: '42501' })
      const after = await pool.query(
        `select current_setting('rowtenancy.tenant_id', true) as t, (select count(*)::int from accounts) as n`,
      )
      expect(after.rows).toEqual([{ t: '', n: 0 }])
      const { rows } = await db.pool.query(
        `select name from accounts where tenant_id = 1 order by name`,
      )
      expect(rows.map((r) => r.name)).toEqual(['a1', 'a2', 'kept'])
      await db.pool.query(`delete from accounts where name = 'kept'`)
    },
  )

  it('a swallowed error inside fn is reported, not silently committed', async () => {
    const pool = fx.runtimePool(1)
    await expect(
      withTenantClient(
        pool,
        async (c) => {
          await c.query('select 1/0').catch(() => {})
        },
        { tenantId: 1 },
      ),
    ).rejects.toThrow(/rolled back/)
    expect((await pool.query('select 1 as x')).rows).toEqual([{ x: 1 }])
  })

  it('fails closed before checkout: no tenant, or an id of the wrong shape', async () => {
    const pool = fx.runtimePool(1)
    let acquired = 0
    pool.on('acquire', () => acquired++)
    await expect(withTenantClient(pool, async () => 1)).rejects.toThrow(MissingTenantError)
    await expect(
      withTenantClient(pool, async () => 1, { tenantId: "1'; drop table accounts; --" }),
    ).rejects.toThrow(InvalidTenantIdError)
    await expect(
      withTenantClient(pool, async () => 1, { tenantId: '1 or 1=1', binding: 'set_local' }),
    ).rejects.toThrow(InvalidTenantIdError)
    expect(acquired).toBe(0)
  })

  it('SET LOCAL with a text id full of quotes binds exactly that string (quoted, not spliced)', async () => {
    const pool = fx.runtimePool(1)
    const hostile = "o'brien'; reset all; select '1"
    const seen = await withTenantClient(
      pool,
      async (c) => (await c.query(`select current_setting('rowtenancy.tenant_id') as t`)).rows[0].t,
      { tenantId: hostile, tenantIdType: 'text', binding: 'set_local' },
    )
    expect(seen).toBe(hostile)
  })

  notOnCitus(RAW_FANS_OUT)('SET LOCAL binding works the same on plain PostgreSQL', async () => {
    const pool = fx.runtimePool(1)
    const rows = await withTenantClient(
      pool,
      async (c) => (await c.query('select name from accounts')).rows,
      { tenantId: 2, binding: 'set_local' },
    )
    expect(names(rows)).toEqual(['b1'])
    const auto = await withTenantClient(
      pool,
      async (c) => (await c.query('select name from accounts')).rows,
      { tenantId: 2, binding: 'auto' },
    )
    expect(names(auto)).toEqual(['b1'])
  })
})
