import { type Generated, sql } from 'kysely'
import type pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTenancy, runWithTenant, type Tenancy } from '../src/entries/index.js'
import { withTenantClient } from '../src/pg/index.js'
import { FAN_OUT, setupCitusFixture } from './citus-fixture.js'
import { NOT_CITUS, onCitus } from './helpers/citus.js'
import type { TestDatabase } from './helpers/db.js'
import type { RlsFixture } from './rls-fixture.js'

interface DB {
  accounts: { tenant_id: Generated<string>; id: Generated<string>; name: string }
}

const names = (rows: { name: string }[]) => rows.map((r) => r.name).sort()

describe.skipIf(!onCitus())(`the binding on a Citus cluster (${NOT_CITUS})`, () => {
  let db: TestDatabase
  let fx: RlsFixture
  let admin: pg.Pool
  let runtime: pg.Pool
  let tenancy: Tenancy

  beforeAll(async () => {
    ;({ db, fx, admin } = await setupCitusFixture('citus_binding'))
    runtime = fx.runtimePool(1) // one connection: reuse across tenants is certain
    tenancy = createTenancy({
      pool: fx.runtimePool(1),
      adminPool: admin,
      tables: ['accounts'],
      audit: { table: false },
    })
  })
  afterAll(async () => {
    await tenancy?.destroy()
    await fx?.cleanup()
  })

  it('accounts is distributed by tenant_id over several shards, tenants is a reference table', async () => {
    const { rows } = await db.pool.query(
      `select logicalrelid::text as t, partmethod, repmodel from pg_dist_partition order by 1`,
    )
    expect(rows).toEqual(
      expect.arrayContaining([
        { t: 'accounts', partmethod: 'h', repmodel: 's' },
        { t: 'tenants', partmethod: 'n', repmodel: 't' },
      ]),
    )
    const shards = await db.pool.query(
      `select count(*)::int as n from pg_dist_shard where logicalrelid = 'accounts'::regclass`,
    )
    expect(shards.rows[0].n).toBeGreaterThan(1)
  })

  it('withTenantClient (default binding, no role option): raw SQL sees the bound tenant on the workers', async () => {
    for (const [tenant, expected] of [
      [1, ['a1', 'a2']],
      [2, ['b1']],
    ] as const) {
      const rows = await withTenantClient(
        runtime,
        async (c) =>
          (await c.query(`select name from accounts where tenant_id = $1`, [tenant])).rows,
        { tenantId: tenant },
      )
      expect(names(rows)).toEqual(expected)
    }
  })

  it('a bound raw query naming another tenant returns nothing: RLS holds on the worker', async () => {
    const rows = await withTenantClient(
      runtime,
      async (c) => (await c.query(`select name from accounts where tenant_id = 2`)).rows,
      { tenantId: 1 },
    )
    expect(rows).toEqual([])
  })

  it('RLS alone (no tenant predicate) asks every shard: refused under multi_task_query_log_level = error', async () => {
    await expect(
      withTenantClient(runtime, (c) => c.query('select name from accounts'), { tenantId: 1 }),
    ).rejects.toThrow(FAN_OUT)
  })

  it('with fan-out allowed, RLS alone still returns only the bound tenant from every worker', async () => {
    const rows = await withTenantClient(
      runtime,
      async (c) => {
        await c.query(`set local citus.multi_task_query_log_level = 'off'`)
        return (await c.query('select name from accounts')).rows
      },
      { tenantId: 2 },
    )
    expect(names(rows)).toEqual(['b1'])
  })

  it("explicit set_config binding does not reach the workers (why auto picks SET LOCAL): no row, or Citus' error", async () => {
    const attempt = withTenantClient(
      runtime,
      async (c) =>
        (await c.query(`select name from accounts where tenant_id = 1`)).rows as { name: string }[],
      { tenantId: 1, binding: 'set_config' },
    )
    const outcome = await attempt.then(
      (rows) => rows.length,
      () => 0,
    )
    expect(outcome).toBe(0)
  })

  it("an INSERT of another tenant's row fails WITH CHECK on the worker; an UPDATE cannot move a row to another tenant", async () => {
    await expect(
      withTenantClient(
        runtime,
        (c) => c.query(`insert into accounts (tenant_id, name) values (2, 'sneaky')`),
        {
          tenantId: 1,
        },
      ),
    ).rejects.toMatchObject({ code: '42501' })
    await expect(
      withTenantClient(
        runtime,
        (c) => c.query(`update accounts set tenant_id = 2 where tenant_id = 1`),
        {
          tenantId: 1,
        },
      ),
    ).rejects.toThrow(/modifying the partition value|row-level security/)
    const { rows } = await db.pool.query(
      `select count(*)::int as n from accounts where tenant_id = 2`,
    )
    expect(rows[0].n).toBe(1)
  })

  it('no binding: a plain query on the runtime role sees no row (fail closed on the workers)', async () => {
    const { rows } = await runtime.query(`select name from accounts where tenant_id = 1`)
    expect(rows).toEqual([])
  })

  it('createTenancy: scoped Kysely queries carry tenant_id, so Citus routes them to one shard', async () => {
    const k = tenancy.kysely<DB>()
    expect(
      names(await runWithTenant(1, () => k.selectFrom('accounts').select('name').execute())),
    ).toEqual(['a1', 'a2'])
    expect(
      names(await runWithTenant(2, () => k.selectFrom('accounts').select('name').execute())),
    ).toEqual(['b1'])
    await runWithTenant(2, () =>
      tenancy.transaction<DB, void>(async (trx) => {
        await trx.insertInto('accounts').values({ name: 'b2' }).execute()
        await trx.updateTable('accounts').set({ name: 'b2x' }).where('name', '=', 'b2').execute()
      }),
    )
    const { rows } = await db.pool.query(`select tenant_id, name from accounts where name = 'b2x'`)
    expect(rows).toEqual([{ tenant_id: '2', name: 'b2x' }])
  })

  it('createTenancy: raw SQL through tenancy.kysely() without the predicate fans out and is refused', async () => {
    const k = tenancy.kysely<DB>()
    await expect(runWithTenant(1, () => sql`select name from accounts`.execute(k))).rejects.toThrow(
      FAN_OUT,
    )
  })
})
