import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { AuditEvent } from '../src/audit/index.js'
import {
  ConfigError,
  createTenancy,
  installPlacements,
  runWithTenant,
  setPlacement,
  type Tenancy,
} from '../src/entries/index.js'
import { withTenantClient } from '../src/pg/index.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'
import { type RlsFixture, setupRlsFixture } from './rls-fixture.js'

interface DB {
  accounts: { tenant_id: string; id: string; name: string }
}

let a: TestDatabase
let b: TestDatabase
let fa: RlsFixture
let fb: RlsFixture
let tenancy: Tenancy
const events: AuditEvent[] = []

beforeAll(async () => {
  a = await createTestDatabase('router_a')
  b = await createTestDatabase('router_b')
  fa = await setupRlsFixture(a)
  fb = await setupRlsFixture(b)
  // Tenant 2 lives in database "eu-2" (b); tenant 1 in the default one (a).
  await a.pool.query('delete from accounts where tenant_id = 2')
  await b.pool.query('delete from accounts')
  await b.pool.query("insert into accounts (tenant_id, name) values (2, 'b-eu')")
  await installPlacements(a.pool)
  await setPlacement(a.pool, {}, '2', 'eu-2')
  tenancy = createTenancy({
    pool: fa.runtimePool(2),
    adminPool: new pg.Pool({ connectionString: a.url, max: 2 }),
    tables: ['accounts'],
    audit: { table: false, logger: (e) => void events.push(e) },
    placement: {
      databases: {
        'eu-2': {
          pool: fb.runtimePool(2),
          adminPool: new pg.Pool({ connectionString: b.url, max: 2 }),
        },
      },
      ttlMs: 0,
    },
  })
})
afterAll(async () => {
  await tenancy?.destroy()
  await fa?.cleanup()
  await fb?.cleanup()
})

const names = (rows: { name: string }[]) => rows.map((r) => r.name).sort()

describe('tenant router: one pool per database, the placement map decides', () => {
  it("scoped Kysely work goes to the tenant's database, reads and writes", async () => {
    const k = tenancy.kysely<DB>()
    const read = (id: number) =>
      runWithTenant(id, () => k.selectFrom('accounts').select('name').execute())
    expect(names(await read(1))).toEqual(['a1', 'a2'])
    expect(names(await read(2))).toEqual(['b-eu'])
    await runWithTenant(2, () =>
      k
        .insertInto('accounts')
        .values({ name: 'b-new' } as never)
        .execute(),
    )
    const inB = await b.pool.query("select tenant_id::text from accounts where name = 'b-new'")
    expect(inB.rows).toEqual([{ tenant_id: '2' }])
    const inA = await a.pool.query("select 1 from accounts where name = 'b-new'")
    expect(inA.rows).toEqual([])
    await runWithTenant(2, () =>
      tenancy.transaction<DB, void>(async (trx) => {
        expect(names(await trx.selectFrom('accounts').select('name').execute())).toEqual([
          'b-eu',
          'b-new',
        ])
      }),
    )
  })

  it('withTenantClient on the tenancy pool follows the tenant, raw SQL included', async () => {
    const pool = tenancy.options.pool as unknown as pg.Pool
    const rows = await withTenantClient(
      pool,
      async (c) => (await c.query('select name from accounts')).rows,
      { tenantId: 2 },
    )
    expect(names(rows)).toEqual(['b-eu', 'b-new'])
    const one = await runWithTenant(1, () =>
      withTenantClient(pool, async (c) => (await c.query('select name from accounts')).rows),
    )
    expect(names(one)).toEqual(['a1', 'a2'])
  })

  it('allObjects says which database it covers', async () => {
    expect(tenancy.databases).toEqual(['default', 'eu-2'])
    events.length = 0
    const eu = await tenancy
      .allObjects<DB>('report', { database: 'eu-2' })
      .selectFrom('accounts')
      .select('name')
      .execute()
    expect(names(eu)).toEqual(['b-eu', 'b-new'])
    expect(events[0]?.reason).toBe('report [database eu-2; other databases not covered]')
    const home = await tenancy
      .allObjects<DB>('report')
      .selectFrom('accounts')
      .select('name')
      .execute()
    expect(names(home)).toEqual(['a1', 'a2'])
    expect(events[1]?.reason).toBe('report [database default; other databases not covered]')
    expect(() => tenancy.allObjects('report', { database: 'nowhere' })).toThrow(ConfigError)
  })

  it('fails closed: a tenant placed in a database the tenancy has no pool for is an error, not the default database', async () => {
    await setPlacement(a.pool, {}, '1', 'nowhere')
    try {
      const k = tenancy.kysely<DB>()
      await expect(
        runWithTenant(1, () => k.selectFrom('accounts').select('name').execute()),
      ).rejects.toThrow(/lives in database "nowhere"/)
    } finally {
      await setPlacement(a.pool, {}, '1', 'default')
    }
    expect(() =>
      createTenancy({
        pool: a.pool,
        tables: ['accounts'],
        placement: { databases: { 'bad name!': a.pool } },
      }),
    ).toThrow(ConfigError)
  })
})
