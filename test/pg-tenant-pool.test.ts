import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runWithTenant, withoutTenant } from '../src/context/index.js'
import { ConfigError, MissingTenantError, UnsafeRoleError } from '../src/errors/index.js'
import { TenantPool } from '../src/pg/index.js'
import { statementKind } from '../src/pg/statement-kind.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'
import { type RlsFixture, setupRlsFixture } from './rls-fixture.js'

let db: TestDatabase
let fx: RlsFixture
const pools: TenantPool[] = []

function tenantPool(options: Partial<ConstructorParameters<typeof TenantPool>[0]> = {}) {
  const pool = new TenantPool({ pool: fx.runtimePool(1), ...options })
  pools.push(pool)
  return pool
}

/** Counts ReadyForQuery messages (one per round trip) on every connection of `pool`. */
function countRoundTrips(pool: pg.Pool): { n: number } {
  const counter = { n: 0 }
  pool.on('connect', (c) => {
    ;(c as unknown as { connection: pg.Connection }).connection.on('readyForQuery', () => {
      counter.n++
    })
  })
  return counter
}

const names = (rows: { name: string }[]) => rows.map((r) => r.name).sort()
const SETTING = "select coalesce(current_setting('rowtenancy.tenant_id', true), '') as t"

beforeAll(async () => {
  db = await createTestDatabase('tenant_pool')
  fx = await setupRlsFixture(db)
  // grantRuntimeRole takes TEMP from the runtime role; give it back, so the temp-table case
  // shows that the reset also clears temporary tables (defence in depth).
  await db.pool.query(`grant temporary on database "${db.name}" to "${fx.role}"`)
})
afterAll(async () => {
  await fx.cleanup()
})

describe('statementKind', () => {
  it('tells transaction control from savepoints and other statements', () => {
    expect(statementKind('BEGIN;')).toBe('begin')
    expect(statementKind('  start transaction isolation level serializable')).toBe('begin')
    expect(statementKind('/* app */ begin')).toBe('begin')
    expect(statementKind('SET TRANSACTION ISOLATION LEVEL SERIALIZABLE')).toBe('set-transaction')
    for (const s of [
      'commit',
      'END',
      'rollback',
      'ROLLBACK WORK',
      'abort',
      "prepare transaction 'x'",
    ]) {
      expect(statementKind(s)).toBe('end')
    }
    for (const s of [
      'rollback to savepoint sp1',
      'ROLLBACK TRANSACTION TO sp',
      'savepoint sp1',
      'release savepoint sp1',
      'select 1',
      'beginning',
      'set local x = 1',
    ]) {
      expect(statementKind(s)).toBe('other')
    }
  })
})

describe('TenantPool', () => {
  it('is a pg.Pool; a lone statement is bound in ONE round trip; no tenant: unbound', async () => {
    const pool = tenantPool()
    expect(pool).toBeInstanceOf(pg.Pool)
    const trips = countRoundTrips(pool.inner)
    await runWithTenant(1, () => pool.query('select name from accounts')) // role check + connect
    trips.n = 0
    const { rows } = await runWithTenant(1, () => pool.query('select name from accounts'))
    expect(names(rows)).toEqual(['a1', 'a2'])
    expect(trips.n).toBe(1)
    expect((await pool.query('select name from accounts')).rows).toEqual([])
    expect((await pool.query(SETTING)).rows).toEqual([{ t: '' }])
    // withoutTenant is no tenant for the tenant pool: unbound, no rows
    expect(
      (await withoutTenant('test', () => pool.query('select name from accounts'))).rows,
    ).toEqual([])
  })

  it('pg shapes: config objects, rowMode array, callbacks, multi-statement text', async () => {
    const pool = tenantPool()
    const r = await runWithTenant(2, () =>
      pool.query({
        text: 'select name from accounts where id > $1',
        values: [0],
        rowMode: 'array',
      }),
    )
    expect(r.rows).toEqual([['b1']])
    const viaCallback = await runWithTenant(
      2,
      () =>
        new Promise<pg.QueryResult>((resolve, reject) =>
          pool.query('select name from accounts', [], (err: Error | null, res?: pg.QueryResult) =>
            err ? reject(err) : resolve(res!),
          ),
        ),
    )
    expect(names(viaCallback.rows)).toEqual(['b1'])
    const multi = await runWithTenant(1, () => pool.query('select 1; select name from accounts'))
    expect((multi as unknown as pg.QueryResult[]).length).toBe(2)
    expect(names((multi as unknown as pg.QueryResult[])[1]!.rows)).toEqual(['a1', 'a2'])
    expect((await pool.query(SETTING)).rows).toEqual([{ t: '' }])
  })

  it('a transaction is bound once after BEGIN, also after SET TRANSACTION; savepoints untouched', async () => {
    const pool = tenantPool()
    const trips = countRoundTrips(pool.inner)
    await runWithTenant(1, () => pool.query('select 1'))
    const client = await pool.connect()
    try {
      trips.n = 0
      await runWithTenant(2, async () => {
        await client.query('START TRANSACTION')
        await client.query('SET TRANSACTION ISOLATION LEVEL SERIALIZABLE')
        await client.query('savepoint sp1')
        await client.query("insert into accounts (tenant_id, name) values (2, 'sp')")
        await client.query('rollback to savepoint sp1')
        const { rows } = await client.query('select name from accounts')
        expect(names(rows)).toEqual(['b1'])
        const iso = await client.query('show transaction_isolation')
        expect(iso.rows[0].transaction_isolation).toBe('serializable')
        await client.query('COMMIT')
      })
      // 8 statements, 8 round trips: the bind rode along with SET TRANSACTION
      expect(trips.n).toBe(8)
      expect((await client.query(SETTING)).rows).toEqual([{ t: '' }])
    } finally {
      client.release()
    }
  })

  it('a client released inside a transaction is rolled back: nothing reaches the next checkout', async () => {
    const pool = tenantPool()
    const client = await pool.connect()
    await runWithTenant(1, async () => {
      await client.query('begin')
      await client.query("insert into accounts (tenant_id, name) values (1, 'left-open')")
    })
    client.release()
    const next = await pool.connect()
    try {
      expect((await next.query(SETTING)).rows).toEqual([{ t: '' }])
      expect(next.getTransactionStatus()).toBe('I')
      const { rows } = await db.pool.query("select 1 from accounts where name = 'left-open'")
      expect(rows).toEqual([])
    } finally {
      next.release()
    }
  })

  it('a failing lone statement leaves no binding behind (set_config and SET LOCAL)', async () => {
    for (const binding of ['set_config', 'set_local'] as const) {
      const pool = tenantPool({ binding })
      await expect(runWithTenant(1, () => pool.query('select 1/0'))).rejects.toThrow(/division/)
      const client = await pool.connect()
      try {
        expect((await client.query(SETTING)).rows).toEqual([{ t: '' }])
        expect(
          names((await runWithTenant(2, () => client.query('select name from accounts'))).rows),
        ).toEqual(['b1'])
      } finally {
        client.release()
      }
    }
  })

  it('raw SQL through it leaves nothing behind: a session-level tenant, search_path, a temp table', async () => {
    const pool = tenantPool()
    await runWithTenant(1, () =>
      pool.query(
        "select set_config('rowtenancy.tenant_id', '2', false), set_config('search_path', 'pg_temp', false)",
      ),
    )
    const client = await pool.connect()
    try {
      await runWithTenant(1, async () => {
        await client.query('begin')
        await client.query('create temp table accounts (tenant_id bigint, name text)')
        await client.query('set local search_path = pg_temp, public')
        await client.query("set rowtenancy.tenant_id = '2'")
        await client.query('commit')
      })
    } finally {
      client.release()
    }
    // the pool holds one connection: the next statements use the same session
    expect((await pool.query(SETTING)).rows).toEqual([{ t: '' }])
    expect((await pool.query('select name from accounts')).rows).toEqual([])
    expect((await pool.query('show search_path')).rows[0].search_path).toBe('"$user", public')
    expect(
      names((await runWithTenant(1, () => pool.query('select name from accounts'))).rows),
    ).toEqual(['a1', 'a2'])
  })

  it('requireTenant: MissingTenantError before any SQL; a cursor outside a transaction is refused', async () => {
    const pool = tenantPool({ requireTenant: true })
    await expect(pool.query('select 1')).rejects.toThrow(MissingTenantError)
    const client = await pool.connect()
    try {
      await expect(client.query('begin')).rejects.toThrow(MissingTenantError)
      expect(() => runWithTenant(1, () => client.query(new pg.Query('select 1') as never))).toThrow(
        ConfigError,
      )
    } finally {
      client.release()
    }
  })

  it('the runtime role is checked like createTenancy: a superuser pool is refused', async () => {
    const pool = new TenantPool({ pool: new pg.Pool({ connectionString: db.url, max: 1 }) })
    pools.push(pool)
    await expect(runWithTenant(1, () => pool.query('select 1'))).rejects.toThrow(UnsafeRoleError)
    await expect(pool.query('select 1')).rejects.toThrow(UnsafeRoleError)
    await pool.end()
    expect(() => new TenantPool({ pool: fx.runtimePool(1), binding: 'session' as never })).toThrow(
      ConfigError,
    )
    expect(() => new TenantPool({ pool: fx.runtimePool(1), nope: 1 } as never)).toThrow(
      /Unknown TenantPool option "nope"/,
    )
  })

  it('a pool that is not a pg.Pool (a tenancy router) is refused, never read as a config', () => {
    // `new pg.Pool(router)` found no connection settings in it: a pool of the PG* environment
    // defaults, another database than any the tenancy routes to.
    class Router {
      readonly #pools = new Map()
      connect() {
        return this.#pools
      }
    }
    expect(() => new TenantPool({ pool: new Router() as never })).toThrow(
      /not a pg\.Pool.*placement/s,
    )
  })
})
