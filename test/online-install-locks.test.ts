/**
 * The online migration's DDL on legacy tables the app is serving (the legacy
 * policy at `--prepare`, the capture triggers, the move back) against an app
 * transaction that holds one legacy table and then wants another, the order
 * that deadlocks with an installer locking them one by one. Each step locks its
 * tables up front with a short wait and retries: the app's transaction
 * completes (never a deadlock victim), the step finishes after a retry, nothing
 * is lost. The cut-over takes no lock a writer waits on: a writer from outside
 * rowtenancy waits on the fence in its capture trigger, and is refused when the
 * cut-over committed meanwhile. A table held for good: a clear error after the
 * bounded attempts, nothing changed.
 */
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { LegacySummary } from '../examples/finance/legacy/generate.js'
import { migrateOnline, rollbackOnline } from '../src/migrate/online/index.js'
import { lockGaveUp, TablesChangedError } from '../src/migrate/online/table-locks.js'
import { quoteIdent } from '../src/sql/quote.js'
import { cli } from './helpers/cli.js'
import { createTestDatabase, dropRoles, type TestDatabase } from './helpers/db.js'
import { legacyWithSharedTables } from './helpers/generated-legacy.js'

let db: TestDatabase
let legacy: LegacySummary
let runtimeUrl: string
const role = `rt_locks_${randomBytes(3).toString('hex')}`
const clients: pg.Client[] = []

beforeAll(async () => {
  db = await createTestDatabase('install_locks')
  ;({ legacy, runtimeUrl } = await legacyWithSharedTables(db, role, {
    tenants: 6,
    seed: 11,
    scale: 0.02,
  }))
}, 180_000)

afterAll(async () => {
  for (const c of clients) await c.end().catch(() => {})
  await db?.drop()
  await dropRoles([role])
}, 60_000)

const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms))

/**
 * pg_locks and pg_stat_activity show the whole cluster: on a server shared with other test
 * files or runs (the same fixture, the same tenant ids, the same statements), a lock of
 * another database would pass for this one's. Every look at them keeps to this database.
 */
const HERE = '(select oid from pg_database where datname = current_database())'

async function connect(url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url })
  await c.connect()
  clients.push(c)
  return c
}

async function pidOf(c: pg.Client): Promise<number> {
  return (await c.query('select pg_backend_pid() as p')).rows[0].p
}

/** Polls `check` until it holds, while `step` has not ended (a deadline only so a broken run ends). */
async function until(
  what: string,
  check: () => Promise<boolean>,
  step: Promise<{ value: unknown; error: unknown }>,
): Promise<void> {
  let ended: { value: unknown; error: unknown } | undefined
  void step.then((r) => {
    ended = r
  })
  const deadline = Date.now() + 60_000
  while (!(await check())) {
    if (ended)
      throw new Error(
        `the step ended before ${what}: ${String(ended.error ?? JSON.stringify(ended.value))}`,
      )
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(3)
  }
}

/** Another session waits for a lock on `waitsOn` while it holds `mode` on `holds`: the installer, mid-way. */
async function installerHoldsAndWaits(
  appPid: number,
  holds: string,
  mode: string,
  waitsOn: string,
): Promise<boolean> {
  const { rows } = await db.pool.query(
    `select 1 from pg_locks w
      where not w.granted and w.locktype = 'relation' and w.database = ${HERE}
        and w.relation = $2::regclass and w.pid <> $1
        and exists (select 1 from pg_locks g where g.pid = w.pid and g.granted
                     and g.locktype = 'relation' and g.relation = $3::regclass and g.mode = $4)`,
    [appPid, waitsOn, holds, mode],
  )
  return rows.length > 0
}

/** Runs the app's `statement` and reports whether it had to wait for a lock on the way. */
async function appStatement(
  app: pg.Client,
  appPid: number,
  text: string,
  values: unknown[] = [],
): Promise<{ waited: boolean; ms: number }> {
  const started = performance.now()
  let done = false
  let waited = false
  const watch = (async () => {
    while (!done) {
      const { rows } = await db.pool.query(
        'select 1 from pg_locks where pid = $1 and not granted',
        [appPid],
      )
      if (rows.length > 0) waited = true
      await sleep(3)
    }
  })()
  try {
    await app.query(text, values)
  } finally {
    done = true
    await watch
  }
  return { waited, ms: performance.now() - started }
}

async function hasPolicy(table: string): Promise<boolean> {
  const { rows } = await db.pool.query(
    `select c.relrowsecurity and exists (select 1 from pg_policy p where p.polrelid = c.oid
       and p.polname = 'rowtenancy_legacy') as ok from pg_class c where c.oid = $1::regclass`,
    [table],
  )
  return rows[0].ok
}

async function placement(id: string): Promise<string | undefined> {
  const { rows } = await db.pool.query(
    'select placement from rowtenancy_serving where tenant_id = $1::bigint',
    [id],
  )
  return rows[0]?.placement
}

/**
 * One account and one transaction of the tenant's schema (made when it has none:
 * a statement on a cut-over schema is refused, even one that writes no row).
 */
async function rowsOf(schema: string): Promise<{ account: string; transaction: string }> {
  const s = quoteIdent(schema)
  const first = async (table: string): Promise<string | null> =>
    (await db.pool.query(`select min(id)::text as id from ${s}.${table}`)).rows[0].id
  let account = await first('finance_account')
  if (account === null) {
    await db.pool.query(`insert into ${s}.finance_account (name) values ('locks test')`)
    account = (await first('finance_account'))!
  }
  let transaction = await first('finance_transaction')
  if (transaction === null) {
    await db.pool.query(
      `insert into ${s}.finance_transaction (account_id, amount, posted_at) values ($1, 1, now())`,
      [account],
    )
    transaction = (await first('finance_transaction'))!
  }
  return { account, transaction }
}

const settle = <T>(p: Promise<T>) =>
  p.then(
    (value) => ({ value, error: undefined }),
    (error: unknown) => ({ value: undefined, error }),
  )

/** A session holding tenant `id`'s serving row: a cut-over or move back that flips it waits there, fence and locks held. */
async function holdServingRow(id: string, on?: pg.Client): Promise<pg.Client> {
  const h = on ?? (await connect(db.url))
  // one round trip on a connected session: begun inside a step's event, it is held long before
  // that step reaches its flip (connecting there could take longer than the step on a slow machine)
  await h.query(
    `begin; select 1 from rowtenancy_serving where tenant_id = ${BigInt(id)} for update`,
  )
  return h
}

/** Some session waits to flip a placement (an update of the serving map), while `step` runs. */
function flipWaits(step: Promise<{ value: unknown; error: unknown }>): Promise<void> {
  return until(
    'the flip waiting on the held serving row',
    async () =>
      (
        await db.pool.query(
          `select 1 from pg_locks l join pg_stat_activity a using (pid)
            where not l.granted and a.datname = current_database()
              and a.query like 'update%rowtenancy_serving%'`,
        )
      ).rows.length > 0,
    step,
  )
}

/** Whether session `pid` waits for a lock now. */
async function waiting(pid: number): Promise<boolean> {
  const { rows } = await db.pool.query('select 1 from pg_locks where pid = $1 and not granted', [
    pid,
  ])
  return rows.length > 0
}

async function count(table: string, where: string, values: unknown[]): Promise<number> {
  const { rows } = await db.pool.query(
    `select count(*)::int as n from ${table} where ${where}`,
    values,
  )
  return rows[0].n
}

describe('online DDL on served legacy tables: locks up front, short waits, retried', () => {
  it('--prepare: the old app holds finance_transaction, then its foreign key wants finance_account; the app completes, the policies follow after a retry', async () => {
    const t = legacy.tenants[0]!
    const s = quoteIdent(t.schema)
    const { account, transaction } = await rowsOf(t.schema)
    // the schema-per-tenant app, as the schemas' owner, before anything is installed
    const app = await connect(db.url)
    const appPid = await pidOf(app)
    await app.query('begin')
    await app.query(`update ${s}.finance_transaction set description = description where id = $1`, [
      transaction,
    ])
    const install = settle(
      migrateOnline({ db: db.pool, all: true, prepareOnly: true, grantTo: role }),
    )
    await until(
      'the installer holding finance_account and waiting for finance_transaction',
      () =>
        installerHoldsAndWaits(
          appPid,
          `${s}.finance_account`,
          'AccessExclusiveLock',
          `${s}.finance_transaction`,
        ),
      install,
    )
    // the foreign key check takes a RowShareLock on finance_account, which the installer holds
    const step = await appStatement(
      app,
      appPid,
      `insert into ${s}.finance_transaction (account_id, amount, posted_at, description)
       values ($1, 2.5, now(), 'written during --prepare')`,
      [account],
    )
    // it completed (a deadlock victim would have thrown); whether it waited for the step's
    // short hold depends on timing, so it is shown, not asserted
    console.info(
      `the app's statement ${step.waited ? 'waited' : 'did not wait'} (${step.ms.toFixed(0)} ms)`,
    )
    // the installer gave up its locks: it cannot have finished while the app holds the table
    expect(await hasPolicy(`${s}.finance_transaction`)).toBe(false)
    await app.query('commit')
    const { value: report, error } = await install
    expect(error).toBeUndefined()
    expect(report!.ok).toBe(true)
    for (const tenant of legacy.tenants) {
      for (const table of [
        'auth_user',
        'auth_membership',
        'finance_account',
        'finance_transaction',
      ])
        expect(await hasPolicy(`${quoteIdent(tenant.schema)}.${table}`)).toBe(true)
      expect(await placement(String(tenant.id))).toBe('schema')
    }
    const { rows } = await db.pool.query(
      `select count(*)::int as n from ${s}.finance_transaction where description = 'written during --prepare'`,
    )
    expect(rows[0].n).toBe(1)
  }, 120_000)

  it('capture triggers: a hybrid request holds finance_transaction, then updates finance_account; it completes, the tenant is cut over after a retry, its writes copied', async () => {
    const t = legacy.tenants[1]!
    const s = quoteIdent(t.schema)
    const { account, transaction } = await rowsOf(t.schema)
    const app = await connect(runtimeUrl)
    const appPid = await pidOf(app)
    await app.query('begin')
    await app.query('select rowtenancy_enter($1, null)', [String(t.id)])
    await app.query('update finance_transaction set description = description where id = $1', [
      transaction,
    ])
    const run = settle(migrateOnline({ db: db.pool, tenantIds: [String(t.id)] }))
    await until(
      'the capture install holding finance_account and waiting for finance_transaction',
      () =>
        installerHoldsAndWaits(
          appPid,
          `${s}.finance_account`,
          'ShareRowExclusiveLock',
          `${s}.finance_transaction`,
        ),
      run,
    )
    const step = await appStatement(
      app,
      appPid,
      `update finance_account set kind = 'during capture' where id = $1`,
      [account],
    )
    // it completed (a deadlock victim would have thrown); whether it waited for the step's
    // short hold depends on timing, so it is shown, not asserted
    console.info(
      `the app's statement ${step.waited ? 'waited' : 'did not wait'} (${step.ms.toFixed(0)} ms)`,
    )
    await app.query(
      `insert into finance_transaction (account_id, amount, posted_at, description)
       values ($1, 3, now(), 'written during capture')`,
      [account],
    )
    await app.query('commit')
    const { value: report, error } = await run
    expect(error).toBeUndefined()
    expect(report!.ok, JSON.stringify(report)).toBe(true)
    expect(await placement(String(t.id))).toBe('shared')
    const { rows } = await db.pool.query(
      `select (select kind from public.finance_account where tenant_id = $1::bigint and id = $2::bigint) as kind,
              (select count(*)::int from public.finance_transaction
                where tenant_id = $1::bigint and description = 'written during capture') as n`,
      [String(t.id), account],
    )
    expect(rows[0]).toEqual({ kind: 'during capture', n: 1 })
  }, 120_000)

  it('cut-over: a session outside rowtenancy wrote finance_transaction (its trigger holds the fence shared), then writes finance_account; the cut-over waits for its commit, takes no lock it waits on, and copies both writes', async () => {
    const t = legacy.tenants[2]!
    const s = quoteIdent(t.schema)
    const id = String(t.id)
    const { account, transaction } = await rowsOf(t.schema)
    // the copy waits on the shared tables, its capture triggers installed
    const holder = await connect(db.url)
    await holder.query('begin')
    await holder.query(
      'lock table public.auth_user, public.auth_membership, public.finance_account, public.finance_transaction in share mode',
    )
    const phases: string[] = []
    const run = settle(
      migrateOnline({
        db: db.pool,
        tenantIds: [id],
        onEvent: (e) => {
          if (e.type === 'online-tenant') phases.push(e.phase)
        },
      }),
    )
    const holderPid = await pidOf(holder)
    await until(
      'the copy waiting on the shared tables',
      async () =>
        (
          await db.pool.query(
            `select 1 from pg_locks where not granted and locktype = 'relation' and pid <> $1
              and database = ${HERE} and relation = any (array['public.auth_user', 'public.auth_membership', 'public.finance_account', 'public.finance_transaction']::regclass[])`,
            [holderPid],
          )
        ).rows.length > 0,
      run,
    )
    // the old app on the owner's role: no rowtenancy_enter; its capture trigger takes the fence
    const app = await connect(db.url)
    const appPid = await pidOf(app)
    await app.query('begin')
    await app.query(
      `update ${s}.finance_transaction set description = 'during cut-over' where id = $1`,
      [transaction],
    )
    await holder.query('commit')
    await until(
      'the cut-over waiting on the fence the app holds',
      async () =>
        (
          await db.pool.query(
            `select 1 from pg_locks w where w.locktype = 'advisory' and not w.granted and w.pid <> $1
              and w.database = ${HERE} and exists (select 1 from pg_locks g where g.locktype = 'advisory' and g.granted and g.pid = $1
                           and g.classid = w.classid and g.objid = w.objid)`,
            [appPid],
          )
        ).rows.length > 0,
      run,
    )
    // the cut-over holds nothing on the legacy tables while it waits: the app's next write goes ahead
    await app.query(`update ${s}.finance_account set kind = 'during cut-over' where id = $1`, [
      account,
    ])
    await app.query('commit')
    const { value: report, error } = await run
    expect(error).toBeUndefined()
    expect(report!.ok, JSON.stringify(report)).toBe(true)
    expect(phases.filter((p) => p === 'fenced')).toHaveLength(1)
    expect(await placement(id)).toBe('shared')
    const { rows } = await db.pool.query(
      `select (select kind from public.finance_account where tenant_id = $1::bigint and id = $2::bigint) as kind,
              (select description from public.finance_transaction where tenant_id = $1::bigint and id = $3::bigint) as description`,
      [id, account, transaction],
    )
    expect(rows[0]).toEqual({ kind: 'during cut-over', description: 'during cut-over' })
  }, 120_000)

  it('rollback --online: a session holds a legacy table, then wants another; it completes, the move back retries', async () => {
    const t = legacy.tenants[2]!
    const s = quoteIdent(t.schema)
    const { account, transaction } = await rowsOf(t.schema)
    const app = await connect(db.url)
    const appPid = await pidOf(app)
    await app.query('begin')
    await app.query(`select 1 from ${s}.finance_transaction where id = $1 for update`, [
      transaction,
    ])
    const back = settle(rollbackOnline({ db: db.pool, tenantId: String(t.id) }))
    await until(
      'the move back holding finance_account and waiting for finance_transaction',
      () =>
        installerHoldsAndWaits(
          appPid,
          `${s}.finance_account`,
          'AccessExclusiveLock',
          `${s}.finance_transaction`,
        ),
      back,
    )
    const step = await appStatement(
      app,
      appPid,
      `select 1 from ${s}.finance_account where id = $1 for share`,
      [account],
    )
    // it completed (a deadlock victim would have thrown); whether it waited for the step's
    // short hold depends on timing, so it is shown, not asserted
    console.info(
      `the app's statement ${step.waited ? 'waited' : 'did not wait'} (${step.ms.toFixed(0)} ms)`,
    )
    await app.query('commit')
    const { error } = await back
    expect(error).toBeUndefined()
    expect(await placement(String(t.id))).toBe('schema')
  }, 120_000)

  for (const [n, isolation] of [
    [4, 'read committed'],
    [5, 'repeatable read'],
  ] as const) {
    it(`cut-over: a write from outside rowtenancy (${isolation}) that arrives while the tenant is fenced is refused once the cut-over commits, never kept in the legacy schema only`, async () => {
      const t = legacy.tenants[n]!
      const id = String(t.id)
      const s = quoteIdent(t.schema)
      let held: Promise<pg.Client> | undefined
      const holder = await connect(db.url)
      const run = settle(
        migrateOnline({
          db: db.pool,
          tenantIds: [id],
          onEvent: (e) => {
            // the cut-over will wait on the serving row with the fence held
            if (e.type === 'online-tenant' && e.phase === 'copying') {
              held ??= holdServingRow(id, holder)
            }
          },
        }),
      )
      await flipWaits(run)
      // the old app, the schemas' owner (no rowtenancy_enter, no RLS)
      const app = await connect(db.url)
      const appPid = await pidOf(app)
      await app.query(`begin isolation level ${isolation}`)
      const write = settle(
        app.query(`insert into ${s}.finance_account (name) values ('written while fenced')`),
      )
      await until('the write waiting', () => waiting(appPid), write)
      await (await held!).query('commit')
      const { value: report, error } = await run
      expect(error).toBeUndefined()
      expect(report!.ok, JSON.stringify(report)).toBe(true)
      expect(await placement(id)).toBe('shared')
      const w = await write
      await app.query(w.error ? 'rollback' : 'commit')
      // refused: RTP01 after the fence (read committed reads the flip), 40001 (repeatable read)
      expect((w.error as { code?: string } | undefined)?.code).toBe(
        isolation === 'read committed' ? 'RTP01' : '40001',
      )
      expect(await count(`${s}.finance_account`, "name = 'written while fenced'", [])).toBe(0)
      // and so is every later write to the cut-over schema
      await expect(
        db.pool.query(`update ${s}.finance_account set name = name`),
      ).rejects.toMatchObject({ code: 'RTP01' })
    }, 120_000)
  }

  it("a cut-over schema's capture triggers are the migration's own: schema generate does not carry them to the shared tables, drift does not report them", async () => {
    const t = legacy.tenants[5]!
    expect(await placement(String(t.id))).toBe('shared')
    const r = await cli(['schema', 'generate', '--from-schema', t.schema, '--database-url', db.url])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/create table/i)
    expect(r.stdout + r.stderr).not.toMatch(/rowtenancy_capture/)
    const plan = await cli([
      'migrate-to-row-tenancy',
      '--tenant-id',
      String(t.id),
      '--dry-run',
      '--database-url',
      db.url,
    ])
    expect(plan.code, plan.stderr).toBe(0)
    expect(plan.stdout + plan.stderr).not.toMatch(/rowtenancy_capture/)
  }, 120_000)

  it('rollback --online: writers waiting while the tenant moves back land where it is then served from: the legacy schema', async () => {
    const t = legacy.tenants[4]!
    const id = String(t.id)
    const s = quoteIdent(t.schema)
    const held = await holdServingRow(id)
    const back = settle(rollbackOnline({ db: db.pool, tenantId: id }))
    await flipWaits(back)
    // the old app on the owner's role, to the legacy table the move back holds
    const owner = await connect(db.url)
    const ownerPid = await pidOf(owner)
    const ownerWrite = settle(
      owner.query(`insert into ${s}.finance_account (name) values ('owner during move back')`),
    )
    await until('the owner write waiting', () => waiting(ownerPid), ownerWrite)
    // hybrid requests: a compiled query for the shared tables, and raw SQL (either placement)
    const compiled = await connect(runtimeUrl)
    const raw = await connect(runtimeUrl)
    const rawPid = await pidOf(raw)
    await compiled.query('begin')
    await raw.query('begin')
    const compiledEnter = settle(compiled.query('select rowtenancy_enter($1, $2)', [id, 'shared']))
    const rawEnter = settle(raw.query('select rowtenancy_enter($1, null)', [id]))
    await until('the raw request waiting at the fence', () => waiting(rawPid), rawEnter)
    await held.query('commit')
    expect((await back).error).toBeUndefined()
    expect(await placement(id)).toBe('schema')
    expect((await ownerWrite).error).toBeUndefined()
    expect(((await compiledEnter).error as { code?: string } | undefined)?.code).toBe('RTP01')
    await compiled.query('rollback')
    expect((await rawEnter).error).toBeUndefined()
    await raw.query(`insert into finance_account (name) values ('raw during move back')`)
    await raw.query('commit')
    for (const name of ['owner during move back', 'raw during move back']) {
      expect(await count(`${s}.finance_account`, 'name = $1', [name])).toBe(1)
      expect(await count('public.finance_account', 'name = $1', [name])).toBe(0)
    }
  }, 120_000)

  it('a table held for good: a clear error after the bounded attempts that names the holder and the schemas prepared before; nothing of the rest changed; the next run finishes', async () => {
    const t = legacy.tenants[3]!
    const first = String(legacy.tenants[0]!.id)
    const table = `${quoteIdent(t.schema)}.finance_account`
    // a table the install has not guarded yet, and two tenants not placed yet
    await db.pool.query(`drop policy rowtenancy_legacy on ${table}`)
    await db.pool.query(`alter table ${table} disable row level security`)
    await db.pool.query('delete from rowtenancy_serving where tenant_id = any($1::bigint[])', [
      [first, String(t.id)],
    ])
    const holder = await connect(db.url)
    await holder.query('begin')
    await holder.query(`select count(*) from ${table}`)
    const { error } = await settle(
      migrateOnline({ db: db.pool, all: true, prepareOnly: true, grantTo: role }),
    )
    expect(String(error)).toMatch(
      new RegExp(
        `Could not lock the legacy tables of schema "${t.schema}" in 8 attempts .*lock timeout on ${t.schema}.finance_account; held by pid ${await pidOf(holder)} .*another session holds them.*` +
          `3 of 6 schemas are prepared already \\("${legacy.tenants[0]!.schema}", .*rerun \`migrate-to-row-tenancy --online --prepare\`.* when it has ended`,
        'is',
      ),
    )
    expect(await hasPolicy(table)).toBe(false)
    // a schema prepared before is placed with its guard (a tenant without a serving row is
    // served from the shared tables); the one it gave up on is not
    expect(await placement(first)).toBe('schema')
    expect(await placement(String(t.id))).toBeUndefined()
    await holder.query('commit')
    const report = await migrateOnline({ db: db.pool, all: true, prepareOnly: true, grantTo: role })
    expect(report.ok).toBe(true)
    expect(await hasPolicy(table)).toBe(true)
    expect(await placement(String(t.id))).toBe('schema')
  }, 120_000)

  it('tables created while locking: the error after the last attempt says so, and does not blame a session holding them', () => {
    const err = lockGaveUp(
      'the legacy tables of schema "s"',
      8,
      new TablesChangedError('legacy table s.t2 appeared while locking'),
    )
    expect(err.message).toMatch(/appeared while locking.*kept being created/s)
    expect(err.message).not.toMatch(/another session holds/i)
    expect(err.message).toMatch(/rerun when that has stopped/)
  })
})
