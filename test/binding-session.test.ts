import { randomBytes } from 'node:crypto'
import { type Generated, Kysely, sql } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runWithTenant } from '../src/context/index.js'
import { BIND_STATEMENT_NAME } from '../src/db/session-guard.js'
import { TenantBindingDialect } from '../src/db/tenant-dialect.js'
import { withTenantClient } from '../src/pg/index.js'
import { createTestDatabase, serverUrl, type TestDatabase } from './helpers/db.js'
import { type RlsFixture, setupRlsFixture } from './rls-fixture.js'

/**
 * Hostile SQL on the runtime role cannot move or poison the binding: whatever it
 * does to the session (session-level tenant, SET ROLE, search_path, temporary
 * tables, PREPARE / DEALLOCATE of the bind statement's name), the next unit of
 * work on that connection, bound or not, sees only what its own binding allows.
 * Every test uses a pool of ONE connection, so reuse is certain (the backend pid
 * is checked).
 */
interface DB {
  accounts: { tenant_id: string; id: Generated<string>; name: string }
}

let db: TestDatabase
let fx: RlsFixture
const other = `rt_other_${randomBytes(4).toString('hex')}`
const instances: Kysely<DB>[] = []

function kysely(pool: pg.Pool, binding: 'auto' | 'set_local' = 'auto'): Kysely<DB> {
  const k = new Kysely<DB>({
    dialect: new TenantBindingDialect({ pool, adminPool: db.pool, binding }),
  })
  instances.push(k)
  return k
}

/** What an unbound plain `pool.query` on the (single) connection sees. */
async function plain(pool: pg.Pool) {
  const { rows } = await pool.query<{
    pid: number
    t: string
    n: number
    user: string
    path: string
    temp: boolean
  }>(
    `select pg_backend_pid() as pid, current_setting('rowtenancy.tenant_id', true) as t,
       (select count(*)::int from accounts) as n, current_user as user,
       current_setting('search_path') as path, pg_my_temp_schema() <> 0
         and exists (select 1 from pg_class where relnamespace = pg_my_temp_schema()) as temp`,
  )
  return rows[0]!
}

const names = (rows: { name: string }[]) => rows.map((r) => r.name).sort()

/** The (single) connection is the same backend and carries nothing: no tenant, no rows, own role, no temp tables. */
async function expectClean(pool: pg.Pool, pid: number) {
  expect(await plain(pool)).toMatchObject({ pid, t: '', n: 0, user: fx.role, temp: false })
}

/** Each of `tenants`, through `k`, sees exactly its own accounts (through raw SQL too with `raw`). */
async function expectOwnRows(k: Kysely<DB>, tenants: readonly number[], raw: boolean) {
  for (const t of tenants) {
    await runWithTenant(t, async () => {
      const want = t === 1 ? ['a1', 'a2'] : ['b1']
      expect(names(await k.selectFrom('accounts').select('name').execute())).toEqual(want)
      if (raw) {
        const { rows } = await sql<{ name: string }>`select name from accounts`.execute(k)
        expect(names(rows)).toEqual(want)
      }
    })
  }
}

/** Attacks raw SQL can run as the runtime role, each one statement. */
const attacks: [string, string][] = [
  ['session set_config', `select set_config('rowtenancy.tenant_id', '2', false)`],
  ['SET of the setting', `set rowtenancy.tenant_id = '2'`],
  [
    'replace the bind statement (DEALLOCATE + PREPARE)',
    `do $$ begin
       if exists (select 1 from pg_prepared_statements where name = '${BIND_STATEMENT_NAME}') then
         execute 'deallocate ${BIND_STATEMENT_NAME}';
       end if;
       execute $p$prepare ${BIND_STATEMENT_NAME}(text) as select set_config('rowtenancy.tenant_id', '2', true)$p$;
     end $$`,
  ],
  [
    'temporary table shadowing accounts',
    'create temp table accounts as select * from public.accounts',
  ],
  ['search_path', 'set search_path = pg_temp, pg_catalog'],
  ['SET ROLE', `set role "${other}"`],
]

beforeAll(async () => {
  db = await createTestDatabase('binding_session')
  fx = await setupRlsFixture(db)
  await db.pool.query(`create role "${other}"; grant "${other}" to "${fx.role}"`)
  // grantRuntimeRole takes TEMP from the runtime role; give it back here, so this suite shows
  // that the session reset also clears temporary tables (defence in depth).
  await db.pool.query(`grant temporary on database "${db.name}" to "${fx.role}"`)
})
afterAll(async () => {
  await Promise.all(instances.map((k) => k.destroy().catch(() => {})))
  await fx.cleanup()
  const admin = new pg.Client({ connectionString: serverUrl() })
  await admin.connect()
  await admin.query(`drop role if exists "${other}"`).catch(() => {})
  await admin.end()
})

describe('raw SQL through the Kysely binding (pool of 1)', () => {
  const cases = attacks.flatMap(([label, text]) =>
    (['auto', 'set_local'] as const).map((binding) => ({ label, text, binding })),
  )
  it.each(cases)(
    '$label ($binding binding): the next bound unit sees only its tenant, a later plain pool.query sees no tenant',
    async ({ text, binding }) => {
      const pool = fx.runtimePool(1)
      const k = kysely(pool, binding)
      const pid0 = (await plain(pool)).pid
      await runWithTenant(1, () => sql.raw(text).execute(k))
      // a plain, unbound query on the same connection: nothing left behind
      await expectClean(pool, pid0)
      await expectOwnRows(k, [1, 2, 1], true)
      // the attack inside a transaction, then more work in it, then COMMIT
      await runWithTenant(1, () =>
        k.transaction().execute(async (trx) => {
          await sql.raw(text).execute(trx)
          await sql`select 1`.execute(trx)
        }),
      )
      await expectClean(pool, pid0)
      // the attack, then a failing statement: ROLLBACK
      await expect(
        runWithTenant(1, () =>
          k.transaction().execute(async (trx) => {
            await sql.raw(text).execute(trx)
            await sql`select 1/0`.execute(trx)
          }),
        ),
      ).rejects.toThrow(/division by zero/)
      await expectClean(pool, pid0)
      const written = await runWithTenant(1, () =>
        k
          .insertInto('accounts')
          .values({ tenant_id: '1', name: 'w' })
          .returning('tenant_id')
          .executeTakeFirstOrThrow(),
      )
      expect(written.tenant_id).toBe('1')
      await db.pool.query(`delete from accounts where name = 'w'`)
    },
  )

  it('a failing raw statement after an attack in the same lone query: the session is reset at release', async () => {
    const pool = fx.runtimePool(1)
    const k = kysely(pool)
    await expect(
      runWithTenant(1, () =>
        sql`select set_config('rowtenancy.tenant_id', '2', false), 1/0`.execute(k),
      ),
    ).rejects.toThrow(/division by zero/)
    expect(await plain(pool)).toMatchObject({ t: '', n: 0 })
  })
})

describe('a foreign plain pool.query on the same pool (pool of 1)', () => {
  it.each(attacks.map(([label, text]) => ({ label, text })))(
    '$label by pool.query: the next bound unit is not moved, and leaves the session clean',
    async ({ text }) => {
      const pool = fx.runtimePool(1)
      const k = kysely(pool)
      await runWithTenant(1, () => k.selectFrom('accounts').select('name').execute()) // prepares the bind
      const pid0 = (await plain(pool)).pid
      await pool.query(text)
      await expectOwnRows(k, [1, 2], false)
      await expectClean(pool, pid0)
    },
  )
})

describe('withTenantClient (pool of 1)', () => {
  it('whatever fn does to the session, the next checkout (bound or a plain query) sees none of it', async () => {
    const pool = fx.runtimePool(1)
    const pid0 = (await plain(pool)).pid
    for (const [, text] of attacks) {
      await withTenantClient(pool, (c) => c.query(text), { tenantId: 1 })
      await expectClean(pool, pid0)
      const rows = await withTenantClient(pool, (c) => c.query('select name from accounts'), {
        tenantId: 2,
      })
      expect(names(rows.rows)).toEqual(['b1'])
    }
    // fn throws after the attack: ROLLBACK + reset
    await expect(
      withTenantClient(
        pool,
        async (c) => {
          await c.query(`select set_config('rowtenancy.tenant_id', '2', false)`)
          throw new Error('boom')
        },
        { tenantId: 1 },
      ),
    ).rejects.toThrow('boom')
    expect(await plain(pool)).toMatchObject({ pid: pid0, t: '', n: 0 })
  })

  it('defaults to binding: auto (set_config on plain PostgreSQL)', async () => {
    const pool = fx.runtimePool(1)
    const rows = await withTenantClient(
      pool,
      (c) => c.query(`select current_setting('rowtenancy.tenant_id') as t`),
      { tenantId: 2 },
    )
    expect(rows.rows[0].t).toBe('2')
  })
})
