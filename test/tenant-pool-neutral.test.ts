import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runWithTenant } from '../src/context/index.js'
import { BIND_STATEMENT_NAME } from '../src/db/session-guard.js'
import { TenantPool } from '../src/pg/index.js'
import { createTestDatabase, serverUrl, type TestDatabase } from './helpers/db.js'
import { type RlsFixture, setupRlsFixture } from './rls-fixture.js'

/**
 * The tenant pool skips the session reset after statements that provably leave
 * the session alone (src/db/neutral-statement.ts). Every attack below changes
 * the session on PostgreSQL when run on a plain connection (asserted first);
 * through the tenant pool, lone or inside a transaction, nothing of it reaches
 * the next checkout. Pools of ONE connection, so reuse is certain.
 */
let db: TestDatabase
let fx: RlsFixture
const other = `rt_other_${randomBytes(4).toString('hex')}`
const pools: TenantPool[] = []

const SESSION_TENANT_2 = "select set_config('rowtenancy.tenant_id', '2', false)::tsvector"
/** [label, text, values]: hostile statements, most of them dressed up to look like plain reads. */
const attacks: [string, string, unknown[]][] = [
  ['set_config', "select set_config('rowtenancy.tenant_id', '2', false)", []],
  ['set_config, quoted name', `select "set_config"('rowtenancy.tenant_id', '2', false)`, []],
  [
    'set_config, qualified name',
    "select pg_catalog.set_config('rowtenancy.tenant_id', '2', false)",
    [],
  ],
  [
    'set_config in a CTE',
    "with x as (select set_config('rowtenancy.tenant_id', '2', false)) select * from x",
    [],
  ],
  [
    'ts_stat on a unicode-escaped literal (no parenthesis after a name)',
    "select (U&'select set_config(!0027rowtenancy.tenant_id!0027, !00272!0027, false)::tsvector' UESCAPE '!').ts_stat",
    [],
  ],
  ['ts_stat on a parameter', 'select $1.ts_stat', [SESSION_TENANT_2]],
  ['ts_stat on a FROM function', 'select u.ts_stat from lower($1) u', [SESSION_TENANT_2]],
  ['ts_stat on a FROM cast', 'select c.ts_stat from cast($1 as text) c', [SESSION_TENANT_2]],
  ['SELECT INTO a temp table shadowing accounts', 'select * into temp accounts from accounts', []],
  [
    'SELECT INTO behind a column named insert',
    'select tenant_id, id, name, name insert into temp accounts from accounts',
    [],
  ],
  ['SET', "set rowtenancy.tenant_id = '2'", []],
  ['search_path', 'set search_path = pg_temp, pg_catalog', []],
  ['SET ROLE', `set role "${other}"`, []],
  [
    'replace the bind statement (DEALLOCATE + PREPARE)',
    `do $$ begin
       if exists (select 1 from pg_prepared_statements where name = '${BIND_STATEMENT_NAME}') then
         execute 'deallocate ${BIND_STATEMENT_NAME}';
       end if;
       execute $p$prepare ${BIND_STATEMENT_NAME}(text) as select set_config('rowtenancy.tenant_id', '2', true)$p$;
     end $$`,
    [],
  ],
]

interface SessionState {
  pid: number
  t: string
  n: number
  user: string
  path: string
  temp: boolean
}

const STATE_SQL = `select pg_backend_pid() as pid, coalesce(current_setting('rowtenancy.tenant_id', true), '') as t,
  (select count(*)::int from accounts) as n, current_user as user,
  current_setting('search_path') as path, pg_my_temp_schema() <> 0
    and exists (select 1 from pg_class where relnamespace = pg_my_temp_schema()) as temp`

/** The session's own state (no table read: it works under any role and search_path). */
async function marks(client: pg.Client) {
  const { rows } = await client.query(
    `select pg_catalog.current_setting('rowtenancy.tenant_id', true) as t, current_user as user,
       pg_catalog.current_setting('search_path') as path,
       pg_catalog.pg_my_temp_schema() <> 0 as temp,
       (select pg_catalog.count(*) from pg_catalog.pg_prepared_statements) as prepared`,
  )
  return rows[0]
}

/** What a plain, unbound query on the (single) connection of `pool` sees. */
async function state(pool: pg.Pool | pg.Client): Promise<SessionState> {
  return (await pool.query<SessionState>(STATE_SQL)).rows[0]!
}

function tenantPool(inner: pg.Pool): TenantPool {
  const pool = new TenantPool({ pool: inner, endPool: false })
  pools.push(pool)
  return pool
}

/** Records the text of every Parse sent on the connections `pool` opens from now on. */
function parsedTexts(pool: pg.Pool): string[] {
  const texts: string[] = []
  pool.on('connect', (client) => {
    const connection = (client as unknown as { connection: { parse(m: { text: string }): void } })
      .connection
    const parse = connection.parse.bind(connection)
    connection.parse = (msg) => {
      texts.push(msg.text)
      parse(msg)
    }
  })
  return texts
}

const names = (rows: { name: string }[]) => rows.map((r) => r.name).sort()

beforeAll(async () => {
  db = await createTestDatabase('tenant_pool_neutral')
  fx = await setupRlsFixture(db)
  await db.pool.query(`create role "${other}"; grant "${other}" to "${fx.role}"`)
  // init --runtime-role takes TEMP away; give it back so the temp-table attacks can run.
  await db.pool.query(`grant temporary on database "${db.name}" to "${fx.role}"`)
})
afterAll(async () => {
  await Promise.all(pools.map((p) => p.end().catch(() => {})))
  await fx.cleanup()
  const admin = new pg.Client({ connectionString: serverUrl() })
  await admin.connect()
  await admin.query(`drop role if exists "${other}"`).catch(() => {})
  await admin.end()
})

describe('the tenant pool skips the reset only after neutral statements', () => {
  it('ORM reads and writes carry no reset and the bind is parsed once per connection; raw SQL still gets it', async () => {
    const inner = fx.runtimePool(1)
    const texts = parsedTexts(inner)
    const pool = tenantPool(inner)
    // The first unit on a connection goes out before the pooler probe answers: unnamed bind.
    for (let i = 0; i < 2; i++)
      await runWithTenant(1, () => pool.query('select name from accounts'))
    texts.length = 0
    for (const [t, want] of [
      [1, ['a1', 'a2']],
      [2, ['b1']],
      [1, ['a1', 'a2']],
    ] as const) {
      const { rows } = await runWithTenant(t, () =>
        pool.query('select "name" from "accounts" where "id" > $1', [0]),
      )
      expect(names(rows)).toEqual(want)
    }
    const client = await pool.connect()
    try {
      await runWithTenant(2, async () => {
        await client.query('begin')
        await client.query('insert into "accounts" ("tenant_id", "name") values ($1, $2)', [2, 'n'])
        expect(names((await client.query('select name from accounts')).rows)).toEqual(['b1', 'n'])
        await client.query('rollback')
      })
    } finally {
      client.release()
    }
    expect(texts.filter((t) => t === 'reset all')).toEqual([])
    expect(texts.filter((t) => t.includes('set_config'))).toEqual([])
    await runWithTenant(1, () => pool.query("select set_config('application_name', 'x', false)"))
    expect(texts.filter((t) => t === 'reset all')).toHaveLength(1)
    expect((await state(inner)).t).toBe('')
  })

  const cases = attacks.flatMap(([label, text, values]) =>
    (['lone', 'transaction'] as const).map((how) => ({ label, text, values, how })),
  )
  it.each(cases)(
    '$label ($how): the attack is real, and nothing reaches the next checkout',
    async ({ text, values, how }) => {
      // On a plain connection as the runtime role, the attack changes the session.
      const raw = new pg.Client({ connectionString: runtimeUrl() })
      await raw.connect()
      try {
        await raw.query('select 1 from pg_catalog.pg_class limit 1')
        const clean = await marks(raw)
        await raw.query(text, values)
        expect(await marks(raw)).not.toEqual(clean)
      } finally {
        await raw.end()
      }

      const inner = fx.runtimePool(1)
      const pool = tenantPool(inner)
      const pid0 = (await state(inner)).pid
      const clean = { pid: pid0, t: '', n: 0, user: fx.role, path: '"$user", public', temp: false }
      await runWithTenant(1, () => pool.query('select name from accounts')) // the bind is prepared
      if (how === 'lone') {
        await runWithTenant(1, () => pool.query(text, values))
      } else {
        const client = await pool.connect()
        try {
          await runWithTenant(1, async () => {
            await client.query('begin')
            await client.query(text, values)
            await client.query('select 1')
            await client.query('commit')
          })
        } finally {
          client.release()
        }
      }
      expect(await state(inner)).toEqual(clean)
      for (const t of [1, 2, 1]) {
        const want = t === 1 ? ['a1', 'a2'] : ['b1']
        expect(
          names((await runWithTenant(t, () => pool.query('select name from accounts'))).rows),
        ).toEqual(want)
      }
      expect((await pool.query('select name from accounts')).rows).toEqual([])
      expect(await state(inner)).toEqual(clean)
    },
  )

  it.each([
    [
      'may create objects (a shadowing function or operator)',
      'select 1',
      (role: string) => `grant create on schema public to "${role}"`,
      (role: string) => `revoke create on schema public from "${role}"`,
    ],
    [
      'owns a table (may change a default or add a rule without CREATE)',
      'create table neutral_owned (id int)',
      (role: string) => `alter table neutral_owned owner to "${role}"`,
      () => 'drop table neutral_owned',
    ],
    [
      'may create triggers on a table',
      'select 1',
      (role: string) => `grant trigger on accounts to "${role}"`,
      (role: string) => `revoke trigger on accounts from "${role}"`,
    ],
  ])(
    'a runtime role that %s gets the reset after every statement',
    async (_, setup, grant, undo) => {
      await db.pool.query(setup)
      await db.pool.query(grant(fx.role))
      try {
        const inner = fx.runtimePool(1)
        const texts = parsedTexts(inner)
        const pool = tenantPool(inner)
        await runWithTenant(1, () => pool.query('select name from accounts'))
        texts.length = 0
        await runWithTenant(1, () => pool.query('select name from accounts'))
        await runWithTenant(2, () => pool.query('select name from accounts'))
        expect(texts.filter((t) => t === 'reset all')).toHaveLength(2)
      } finally {
        await db.pool.query(undo(fx.role))
      }
    },
  )
})

function runtimeUrl(): string {
  const inner = fx.runtimePool(1)
  return (inner as unknown as { options: { connectionString: string } }).options.connectionString
}
