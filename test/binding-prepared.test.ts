import { type Generated, Kysely, sql } from 'kysely'
import type pg from 'pg'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { runWithTenant } from '../src/context/index.js'
import { BIND_STATEMENT_NAME as PREPARED_BIND_NAME } from '../src/db/session-guard.js'
import { TenantBindingDialect } from '../src/db/tenant-dialect.js'
import { type TenantBindingConfig, TenantBindingDriver } from '../src/db/tenant-driver.js'
import { ConfigError } from '../src/errors/index.js'
import { createTenancy } from '../src/tenancy/index.js'
import { describeNotOnCitus, SET_CONFIG_LOCAL } from './helpers/citus.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'
import { type RlsFixture, setupRlsFixture } from './rls-fixture.js'

interface DB {
  accounts: { tenant_id: string; id: Generated<string>; name: string }
}

let db: TestDatabase
let fx: RlsFixture
const instances: Kysely<DB>[] = []

function kysely(config: Partial<TenantBindingConfig> & { pool: pg.Pool }): Kysely<DB> {
  const k = new Kysely<DB>({
    dialect: new TenantBindingDialect({ adminPool: db.pool, prepareBind: true, ...config }),
  })
  instances.push(k)
  return k
}

/** A runtime pool of one connection that records the names of the named Parse messages sent. */
function countingPool(): { pool: pg.Pool; parses: string[] } {
  const pool = fx.runtimePool(1)
  const parses: string[] = []
  pool.on('connect', (c) => {
    const con = (c as unknown as { connection: { parse(msg: { name?: string }): void } }).connection
    const parse = con.parse.bind(con)
    con.parse = (msg) => {
      if (msg.name) parses.push(msg.name)
      parse(msg)
    }
  })
  return { pool, parses }
}

/** What the (single) runtime connection holds, looked at raw with no tenant bound. */
async function session(pool: pg.Pool) {
  const { rows } = await pool.query<{ pid: number; t: string; n: number; prepared: string[] }>(
    `select pg_backend_pid() as pid, current_setting('rowtenancy.tenant_id', true) as t,
       (select count(*)::int from accounts) as n,
       array(select name from pg_prepared_statements order by name) as prepared`,
  )
  return rows[0]!
}

const names = (rows: { name: string }[]) => rows.map((r) => r.name).sort()
const pid = sql<{ pid: number }>`select pg_backend_pid() as pid`

beforeAll(async () => {
  db = await createTestDatabase('binding_prepared')
  fx = await setupRlsFixture(db)
})
afterAll(async () => {
  await Promise.all(instances.map((k) => k.destroy().catch(() => {})))
  await fx.cleanup()
})

describeNotOnCitus(SET_CONFIG_LOCAL)(
  'prepared bind (the default: set_config bind prepared once per connection)',
  () => {
    it('one reused connection across tenants: each sees only its rows, raw SQL included; nothing carried over after release', async () => {
      const { pool, parses } = countingPool()
      const k = kysely({ pool })
      const seen: string[][] = []
      const pids = new Set<number>()
      for (const t of [1, 2, 1, 2]) {
        await runWithTenant(t, async () => {
          seen.push(names(await k.selectFrom('accounts').select('name').execute()))
          seen.push(names((await sql<{ name: string }>`select name from accounts`.execute(k)).rows))
          seen.push(
            names(
              await k
                .transaction()
                .execute((trx) => trx.selectFrom('accounts').select('name').execute()),
            ),
          )
          pids.add((await pid.execute(k)).rows[0]!.pid)
        })
      }
      const a = ['a1', 'a2']
      const b = ['b1']
      expect(seen).toEqual([a, a, a, b, b, b, a, a, a, b, b, b])
      expect(pids.size).toBe(1)
      // Pitfall: a prepared statement outlives the transaction; the tenant it bound must not.
      // (The raw SQL above reset the session each time: the bind statement is closed with it.)
      const raw = await session(pool)
      expect(raw).toEqual({ pid: [...pids][0], t: '', n: 0, prepared: [] })
      expect(parses.every((p) => p === PREPARED_BIND_NAME)).toBe(true)
    })

    it('the bind statement is parsed once per connection, not once per query', async () => {
      const { pool, parses } = countingPool()
      const k = kysely({ pool })
      for (const t of [1, 2, 1, 2, 1]) {
        await runWithTenant(t, () => k.selectFrom('accounts').select('name').execute())
      }
      await runWithTenant(2, () =>
        k.transaction().execute((trx) => trx.selectFrom('accounts').select('name').execute()),
      )
      expect(parses).toEqual([PREPARED_BIND_NAME])
    })

    it('the server lost the statement (a pooler swapped the session): the query still runs, ONCE, and the pool falls back to the unnamed bind', async () => {
      // A builder query (not raw SQL, so no session reset follows it) that drops every
      // prepared statement, as a pooler handing the client another server session would.
      await db.pool.query(`create or replace function forget_prepared() returns int language plpgsql as
      $$ begin deallocate all; return 1; end $$`)
      const { pool, parses } = countingPool()
      const k = kysely({ pool })
      await runWithTenant(1, () => k.selectFrom('accounts').select('name').execute())
      await runWithTenant(1, () =>
        k.selectNoFrom((eb) => eb.fn<number>('forget_prepared').as('x')).execute(),
      )
      expect((await db.pool.query('select count(*)::int as n from accounts')).rows[0].n).toBe(3)
      // The next pipeline is [Bind rowtenancy_bind, INSERT]: the Bind fails with "does not
      // exist" before the INSERT runs; re-sent with the unnamed bind, the INSERT runs once.
      const row = await runWithTenant(1, () =>
        k
          .insertInto('accounts')
          .values({ tenant_id: '1', name: 'once' })
          .returning('tenant_id')
          .executeTakeFirstOrThrow(),
      )
      expect(row.tenant_id).toBe('1')
      const { rows } = await db.pool.query(
        `select count(*)::int as n from accounts where name = 'once'`,
      )
      expect(rows[0].n).toBe(1)
      // from now on the unnamed bind: no more named Parse
      const before = parses.length
      for (const t of [1, 2]) {
        const got = await runWithTenant(t, () => k.selectFrom('accounts').select('name').execute())
        expect(names(got)).toEqual(t === 1 ? ['a1', 'a2', 'once'] : ['b1'])
      }
      expect(parses.length).toBe(before)
      expect(await session(pool)).toMatchObject({ t: '', n: 0 })
      await db.pool.query(`delete from accounts where name = 'once'`)
    })

    it('the same inside a transaction: BEGIN + bind fail, ROLLBACK, sent again; the work commits once', async () => {
      const { pool } = countingPool()
      const k = kysely({ pool })
      await runWithTenant(2, () => k.selectFrom('accounts').select('name').execute())
      await runWithTenant(2, () =>
        k.selectNoFrom((eb) => eb.fn<number>('forget_prepared').as('x')).execute(),
      )
      await runWithTenant(2, () =>
        k.transaction().execute(async (trx) => {
          await trx.insertInto('accounts').values({ tenant_id: '2', name: 'tx-once' }).execute()
          await trx.insertInto('accounts').values({ tenant_id: '2', name: 'tx-once' }).execute()
        }),
      )
      const { rows } = await db.pool.query(
        `select count(*)::int as n from accounts where name = 'tx-once'`,
      )
      expect(rows[0].n).toBe(2)
      expect(await session(pool)).toMatchObject({ t: '', n: 0 })
      await db.pool.query(`delete from accounts where name = 'tx-once'`)
    })

    it('SET LOCAL binding ignores the option: nothing is prepared', async () => {
      const { pool, parses } = countingPool()
      const k = kysely({ pool, binding: 'set_local' })
      const one = await runWithTenant(1, () => k.selectFrom('accounts').select('name').execute())
      expect(names(one)).toEqual(['a1', 'a2'])
      expect(parses).toEqual([])
      expect(await session(pool)).toMatchObject({ t: '', n: 0, prepared: [] })
    })

    it('prepareBind: false: the bind stays an unnamed statement', async () => {
      const { pool, parses } = countingPool()
      const k = kysely({ pool, prepareBind: false })
      await runWithTenant(1, () => k.selectFrom('accounts').select('name').execute())
      expect(parses).toEqual([])
    })

    it('createTenancy prepares the bind by default; a non-boolean prepareBind to the dialect; a non-boolean is a ConfigError', async () => {
      const { pool, parses } = countingPool()
      const tenancy = createTenancy({
        pool,
        adminPool: db.pool,
        tables: ['accounts'],
        audit: { table: false },
      })
      const k = tenancy.kysely<DB>()
      for (const t of [1, 2]) {
        await runWithTenant(t, () => k.selectFrom('accounts').select('name').execute())
      }
      expect(parses).toEqual([PREPARED_BIND_NAME])
      await k.destroy()
      expect(() => createTenancy({ pool, tables: ['accounts'], prepareBind: 1 as never })).toThrow(
        ConfigError,
      )
    })

    it('a non-boolean prepareBind is a ConfigError', () => {
      expect(
        () => new TenantBindingDriver({ pool: fx.runtimePool(1), prepareBind: 'yes' as never }),
      ).toThrow(ConfigError)
    })
  },
)
