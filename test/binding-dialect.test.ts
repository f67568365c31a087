import { type Generated, Kysely, sql } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runWithTenant, withoutTenant } from '../src/context/index.js'
import { bindStatement } from '../src/db/binding.js'
import { savepointTransactions } from '../src/db/savepoint-transactions.js'
import { TenantBindingDialect } from '../src/db/tenant-dialect.js'
import type { TenantBindingConfig } from '../src/db/tenant-driver.js'
import {
  ConfigError,
  InvalidTenantIdError,
  MissingTenantError,
  UnsafeRoleError,
} from '../src/errors/index.js'
import { describeNotOnCitus, RAW_FANS_OUT, SET_CONFIG_LOCAL } from './helpers/citus.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'
import { type RlsFixture, setupRlsFixture } from './rls-fixture.js'

interface DB {
  accounts: { tenant_id: string; id: Generated<string>; name: string }
}

let db: TestDatabase
let fx: RlsFixture
const instances: Kysely<DB>[] = []
const superPools: pg.Pool[] = []

/** A pool as the test database's superuser (ended in afterAll). */
function superPool(): pg.Pool {
  const pool = new pg.Pool({ connectionString: db.url, max: 1 })
  superPools.push(pool)
  return pool
}

function kysely(config: Partial<TenantBindingConfig> & { pool: pg.Pool }): Kysely<DB> {
  const k = new Kysely<DB>({ dialect: new TenantBindingDialect({ adminPool: db.pool, ...config }) })
  instances.push(k)
  return k
}

const names = (rows: { name: string }[]) => rows.map((r) => r.name).sort()
const setting = sql<{ t: string }>`select current_setting('rowtenancy.tenant_id', true) as t`

beforeAll(async () => {
  db = await createTestDatabase('binding')
  fx = await setupRlsFixture(db)
})
afterAll(async () => {
  await Promise.all(instances.map((k) => k.destroy().catch(() => {})))
  await Promise.all(superPools.map((p) => p.end().catch(() => {})))
  await fx.cleanup()
})

describe('binding statements', () => {
  it('set_config takes the id as a parameter; set_local quotes the validated id', () => {
    expect(bindStatement('set_config', 'bigint', 7)).toEqual({
      text: `select pg_catalog.set_config('rowtenancy.tenant_id', $1, true)`,
      values: ['7'],
    })
    expect(bindStatement('set_local', 'text', "o'brien")).toEqual({
      text: `set local rowtenancy.tenant_id = 'o''brien'`,
      values: [],
    })
  })

  it('hostile ids are rejected for their type before any SQL exists', () => {
    for (const id of [
      "1'; drop table accounts; --",
      '1 or 1=1',
      '',
      ' 1',
      '99999999999999999999',
    ]) {
      expect(() => bindStatement('set_local', 'bigint', id)).toThrow(InvalidTenantIdError)
    }
    expect(() => bindStatement('set_local', 'uuid', "x'::uuid")).toThrow(InvalidTenantIdError)
    expect(() => bindStatement('set_local', 'text', "a\\'; select 1; --")).toThrow(
      InvalidTenantIdError,
    )
    expect(() => bindStatement('set_local', 'text', 'a\u0000b')).toThrow(InvalidTenantIdError)
  })
})

describeNotOnCitus(SET_CONFIG_LOCAL)('the tenant-binding dialect (set_config)', () => {
  it('a lone query sees only the bound tenant, Kysely and raw SQL alike', async () => {
    const k = kysely({ pool: fx.runtimePool() })
    const one = await runWithTenant(1, () => k.selectFrom('accounts').select('name').execute())
    expect(names(one)).toEqual(['a1', 'a2'])
    const two = await runWithTenant('2', () =>
      sql<{ name: string }>`select name from accounts`.execute(k),
    )
    expect(names(two.rows)).toEqual(['b1'])
  })

  it('no tenant: MissingTenantError before a connection is taken', async () => {
    const pool = fx.runtimePool()
    const k = kysely({ pool })
    await runWithTenant(1, () => k.selectFrom('accounts').select('name').execute()) // warm up: init
    let acquired = 0
    pool.on('acquire', () => acquired++)
    await expect(k.selectFrom('accounts').selectAll().execute()).rejects.toThrow(MissingTenantError)
    await expect(
      runWithTenant('abc', () => k.selectFrom('accounts').selectAll().execute()),
    ).rejects.toThrow(InvalidTenantIdError)
    expect(acquired).toBe(0)
  })

  it('pooled connection reuse (max 1): nothing of tenant A survives into the next checkout', async () => {
    const pool = fx.runtimePool(1)
    const k = kysely({ pool })
    const pidA = await runWithTenant(1, async () => {
      expect(names(await k.selectFrom('accounts').select('name').execute())).toEqual(['a1', 'a2'])
      return (await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(k)).rows[0]!.pid
    })
    // the same connection, used raw with no tenant
    const raw = await pool.query(
      `select pg_backend_pid() as pid, current_setting('rowtenancy.tenant_id', true) as t, (select count(*)::int from accounts) as n`,
    )
    expect(raw.rows[0]).toEqual({ pid: pidA, t: '', n: 0 })
    // and used for tenant B
    const b = await runWithTenant(2, () => k.selectFrom('accounts').select('name').execute())
    expect(names(b)).toEqual(['b1'])
  })

  it("works on a pool in pg's pipeline mode: concurrent scoped queries keep their own tenant", async () => {
    const pool = new pg.Pool({
      connectionString: fx.runtimeUrl,
      max: 1,
      pipeline: true,
    } as pg.PoolConfig)
    superPools.push(pool)
    const k = kysely({ pool })
    const runs = await Promise.all(
      [1, 2, 1, 2, 1, 2].map((t) =>
        runWithTenant(t, () => k.selectFrom('accounts').select('name').execute()),
      ),
    )
    expect(runs.map(names)).toEqual([
      ['a1', 'a2'],
      ['b1'],
      ['a1', 'a2'],
      ['b1'],
      ['a1', 'a2'],
      ['b1'],
    ])
  })

  it('round trips: a lone scoped query costs 1; a transaction of 2 statements costs 3 (BEGIN + bind ride along)', async () => {
    const pool = fx.runtimePool(1)
    let syncs = 0
    pool.on('connect', (c) => {
      ;(c as unknown as { connection: pg.Connection }).connection.on('readyForQuery', () => syncs++)
    })
    const k = kysely({ pool })
    await runWithTenant(1, () => k.selectFrom('accounts').select('name').execute()) // init + connect
    syncs = 0
    await runWithTenant(1, () => k.selectFrom('accounts').select('name').execute())
    expect(syncs).toBe(1)
    syncs = 0
    await runWithTenant(1, () =>
      k.transaction().execute(async (trx) => {
        await trx.selectFrom('accounts').select('name').execute()
        await trx.selectFrom('accounts').select('id').execute()
      }),
    )
    expect(syncs).toBe(3)
  })

  it('a failing lone query leaves no transaction and no binding behind', async () => {
    const pool = fx.runtimePool(1)
    const k = kysely({ pool })
    await expect(runWithTenant(1, () => sql`select 1/0`.execute(k))).rejects.toThrow(/division/)
    const c = await pool.connect()
    try {
      expect(c.getTransactionStatus()).toBe('I')
      expect(
        (await c.query(`select current_setting('rowtenancy.tenant_id', true) as t`)).rows,
      ).toEqual([{ t: '' }])
    } finally {
      c.release()
    }
  })

  it('db.transaction(): bound once at BEGIN, commits, rolls back on error', async () => {
    const pool = fx.runtimePool(1)
    const k = kysely({ pool })
    await runWithTenant(1, () =>
      k.transaction().execute(async (trx) => {
        expect((await setting.execute(trx)).rows).toEqual([{ t: '1' }])
        await trx.insertInto('accounts').values({ tenant_id: '1', name: 'a3' }).execute()
        expect(names(await trx.selectFrom('accounts').select('name').execute())).toEqual([
          'a1',
          'a2',
          'a3',
        ])
      }),
    )
    await expect(
      runWithTenant(1, () =>
        k.transaction().execute(async (trx) => {
          await trx.insertInto('accounts').values({ tenant_id: '1', name: 'lost' }).execute()
          throw new Error('boom')
        }),
      ),
    ).rejects.toThrow('boom')
    // a tenant-2 row through a tenant-1 transaction fails WITH CHECK
    await expect(
      runWithTenant(1, () =>
        k
          .transaction()
          .execute((trx) =>
            trx.insertInto('accounts').values({ tenant_id: '2', name: 'x' }).execute(),
          ),
      ),
    ).rejects.toMatchObject({ code: '42501' })
    // an empty transaction sends nothing and succeeds
    await runWithTenant(1, () => k.transaction().execute(async () => 'nothing'))
    const all = await db.pool.query(`select name from accounts where tenant_id = 1 order by name`)
    expect(all.rows.map((r) => r.name)).toEqual(['a1', 'a2', 'a3'])
    expect(
      (await pool.query(`select current_setting('rowtenancy.tenant_id', true) as t`)).rows,
    ).toEqual([{ t: '' }])
    await db.pool.query(`delete from accounts where name = 'a3'`)
  })

  it('tenancy.transaction(fn): nested calls are savepoints', async () => {
    const k = kysely({ pool: fx.runtimePool(2) })
    const transaction = savepointTransactions(k)
    await runWithTenant(2, () =>
      transaction(async (trx) => {
        await trx.insertInto('accounts').values({ tenant_id: '2', name: 'outer' }).execute()
        await expect(
          transaction(async (inner) => {
            await inner
              .insertInto('accounts')
              .values({ tenant_id: '2', name: 'inner-lost' })
              .execute()
            throw new Error('inner fails')
          }),
        ).rejects.toThrow('inner fails')
        await transaction((inner) =>
          inner.insertInto('accounts').values({ tenant_id: '2', name: 'inner-kept' }).execute(),
        )
      }),
    )
    const { rows } = await db.pool.query(
      `select name from accounts where tenant_id = 2 order by name`,
    )
    expect(rows.map((r) => r.name)).toEqual(['b1', 'inner-kept', 'outer'])
    await db.pool.query(`delete from accounts where name in ('outer', 'inner-kept')`)
  })

  it('withoutTenant(reason) goes to the admin pool, unbound; without an admin pool it is a ConfigError', async () => {
    const k = kysely({ pool: fx.runtimePool() })
    const all = await withoutTenant('test: all tenants', () =>
      k.selectFrom('accounts').select('name').execute(),
    )
    expect(names(all)).toEqual(['a1', 'a2', 'b1'])
    const noAdmin = new Kysely<DB>({
      dialect: new TenantBindingDialect({ pool: fx.runtimePool() }),
    })
    instances.push(noAdmin)
    await expect(
      withoutTenant('test', () => noAdmin.selectFrom('accounts').selectAll().execute()),
    ).rejects.toThrow(ConfigError)
  })
})

describe('start-up role check', () => {
  it('refuses a superuser runtime pool with UnsafeRoleError', async () => {
    const k = kysely({ pool: superPool() })
    await expect(
      runWithTenant(1, () => k.selectFrom('accounts').selectAll().execute()),
    ).rejects.toThrow(UnsafeRoleError)
  })

  it('refuses a role that owns a tenant-aware table', async () => {
    const owner = `${fx.role}_owner`
    await db.pool.query(`create role "${owner}" login password 'pw'`)
    try {
      await db.pool.query(`create table owned_by_other (tenant_id bigint not null, x int)`)
      await db.pool.query(`alter table owned_by_other owner to "${owner}"`)
      const url = new URL(db.url)
      url.username = owner
      url.password = 'pw'
      const pool = new pg.Pool({ connectionString: url.toString(), max: 1 })
      superPools.push(pool)
      const k = kysely({ pool })
      await expect(
        runWithTenant(1, () => k.selectFrom('accounts').selectAll().execute()),
      ).rejects.toThrow(/owns tenant-aware tables \(public\.owned_by_other\)/)
    } finally {
      await db.pool.query(`drop table if exists owned_by_other`)
      await db.pool.query(`drop role if exists "${owner}"`)
    }
  })

  it('allowUnsafeRole downgrades to a loud warning', async () => {
    const warnings: string[] = []
    const k = kysely({
      pool: superPool(),
      allowUnsafeRole: true,
      warn: (m) => warnings.push(m),
    })
    const rows = await runWithTenant(1, () => k.selectFrom('accounts').select('name').execute())
    expect(names(rows)).toEqual(['a1', 'a2', 'b1']) // a superuser bypasses RLS: why it is refused by default
    expect(warnings[0]).toMatch(/WARNING.*is a superuser/)
  })
})

describeNotOnCitus(RAW_FANS_OUT)('SET LOCAL binding (the Citus mode), on plain PostgreSQL', () => {
  it('binds with SET LOCAL, one transaction per query, nothing left behind', async () => {
    const pool = fx.runtimePool(1)
    const k = kysely({ pool, binding: 'set_local' })
    const notices: string[] = []
    pool.on('connect', (c) => c.on('notice', (n) => notices.push(n.message ?? '')))
    const rows = await runWithTenant(1, () => k.selectFrom('accounts').select('name').execute())
    expect(names(rows)).toEqual(['a1', 'a2'])
    await runWithTenant(2, () =>
      k.transaction().execute(async (trx) => {
        expect((await setting.execute(trx)).rows).toEqual([{ t: '2' }])
      }),
    )
    await expect(runWithTenant(1, () => sql`select 1/0`.execute(k))).rejects.toThrow(/division/)
    const raw = await pool.query(`select current_setting('rowtenancy.tenant_id', true) as t`)
    expect(raw.rows).toEqual([{ t: '' }])
    expect(notices).toEqual([]) // no "SET LOCAL can only be used in transaction blocks"
  })

  it('hostile ids never reach the server', async () => {
    const pool = fx.runtimePool(1)
    const k = kysely({ pool, binding: 'set_local' })
    await runWithTenant(1, () => k.selectFrom('accounts').select('name').execute())
    let acquired = 0
    pool.on('acquire', () => acquired++)
    for (const id of ["1'; drop table accounts; --", '1; reset all', '0x10']) {
      await expect(
        runWithTenant(id, () => k.selectFrom('accounts').selectAll().execute()),
      ).rejects.toThrow(InvalidTenantIdError)
    }
    expect(acquired).toBe(0)
    expect((await db.pool.query(`select count(*)::int as n from accounts`)).rows[0].n).toBe(3)
  })
})
