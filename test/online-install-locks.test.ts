/**
 * The online migration's DDL on legacy tables the app is serving (the legacy
 * policy at `--prepare`, the capture triggers, the cut-over's trigger drop, the
 * move back) against an app transaction that holds one legacy table and then
 * wants another, the order that deadlocks with an installer locking them one by
 * one. Each step locks its tables up front with a short wait and retries: the
 * app's transaction completes (never a deadlock victim), the step finishes
 * after a retry, nothing is lost. A table held for good: a clear error after the
 * bounded attempts, nothing changed.
 */
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { generateLegacy, type LegacySummary } from '../examples/finance/legacy/generate.js'
import { migrateOnline, rollbackOnline } from '../src/migrate/online/index.js'
import { quoteIdent } from '../src/sql/quote.js'
import { cli } from './helpers/cli.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'

let db: TestDatabase
let legacy: LegacySummary
let runtimeUrl: string
const role = `rt_locks_${randomBytes(3).toString('hex')}`
const clients: pg.Client[] = []

beforeAll(async () => {
  db = await createTestDatabase('install_locks')
  legacy = await generateLegacy(db.pool, { tenants: 4, seed: 11, scale: 0.02 })
  for (const args of [
    ['init', '--runtime-role', role],
    ['schema', 'generate', '--from-schema', legacy.tenants[0]!.schema, '--apply'],
  ]) {
    const r = await cli([...args, '--database-url', db.url])
    expect(r.code, r.stderr).toBe(0)
  }
  const password = randomBytes(8).toString('hex')
  await db.pool.query(`alter role ${quoteIdent(role)} login password '${password}'`)
  const u = new URL(db.url)
  u.username = role
  u.password = password
  runtimeUrl = u.toString()
}, 180_000)

afterAll(async () => {
  for (const c of clients) await c.end().catch(() => {})
  await db?.drop()
  await db?.pool.query(`drop role if exists ${quoteIdent(role)}`).catch(() => {})
}, 60_000)

const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms))

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
      where not w.granted and w.locktype = 'relation' and w.relation = $2::regclass and w.pid <> $1
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

/** One account and one transaction of the tenant's schema (made when it has none). */
async function rowsOf(schema: string): Promise<{ account: string; transaction: string }> {
  const s = quoteIdent(schema)
  await db.pool.query(
    `insert into ${s}.finance_account (name) select 'locks test' where not exists (select 1 from ${s}.finance_account)`,
  )
  const account = (await db.pool.query(`select min(id)::text as id from ${s}.finance_account`))
    .rows[0].id
  await db.pool.query(
    `insert into ${s}.finance_transaction (account_id, amount, posted_at)
     select $1, 1, now() where not exists (select 1 from ${s}.finance_transaction)`,
    [account],
  )
  const transaction = (
    await db.pool.query(`select min(id)::text as id from ${s}.finance_transaction`)
  ).rows[0].id
  return { account, transaction }
}

const settle = <T>(p: Promise<T>) =>
  p.then(
    (value) => ({ value, error: undefined }),
    (error: unknown) => ({ value: undefined, error }),
  )

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
    expect(step.waited).toBe(true)
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
    console.info(`install locks: the app's statement waited ${step.ms.toFixed(0)} ms`)
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
    expect(step.waited).toBe(true)
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

  it('cut-over: a session outside rowtenancy holds finance_transaction, then writes finance_account (its trigger waits on the fence); it completes, the cut-over retries and takes its write', async () => {
    const t = legacy.tenants[2]!
    const s = quoteIdent(t.schema)
    const { account, transaction } = await rowsOf(t.schema)
    // the old app on the owner's role: no rowtenancy_enter, no fence until its capture trigger
    const app = await connect(db.url)
    const appPid = await pidOf(app)
    await app.query('begin')
    await app.query(`select 1 from ${s}.finance_transaction where id = $1 for update`, [
      transaction,
    ])
    const phases: string[] = []
    const run = settle(
      migrateOnline({
        db: db.pool,
        tenantIds: [String(t.id)],
        onEvent: (e) => {
          if (e.type === 'online-tenant') phases.push(e.phase)
        },
      }),
    )
    await until(
      'the cut-over holding finance_account and waiting for finance_transaction',
      () =>
        installerHoldsAndWaits(
          appPid,
          `${s}.finance_account`,
          'AccessExclusiveLock',
          `${s}.finance_transaction`,
        ),
      run,
    )
    expect(phases).toContain('fenced')
    const step = await appStatement(
      app,
      appPid,
      `update ${s}.finance_account set kind = 'during cut-over' where id = $1`,
      [account],
    )
    expect(step.waited).toBe(true)
    await app.query('commit')
    const { value: report, error } = await run
    expect(error).toBeUndefined()
    expect(report!.ok, JSON.stringify(report)).toBe(true)
    // fenced more than once: the first cut-over gave way
    expect(phases.filter((p) => p === 'fenced').length).toBeGreaterThan(1)
    expect(await placement(String(t.id))).toBe('shared')
    const { rows } = await db.pool.query(
      'select kind from public.finance_account where tenant_id = $1::bigint and id = $2::bigint',
      [String(t.id), account],
    )
    expect(rows[0].kind).toBe('during cut-over')
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
    expect(step.waited).toBe(true)
    await app.query('commit')
    const { error } = await back
    expect(error).toBeUndefined()
    expect(await placement(String(t.id))).toBe('schema')
  }, 120_000)

  it('a table held for good: a clear error after the bounded attempts, nothing changed; the next run finishes', async () => {
    const t = legacy.tenants[3]!
    const table = `${quoteIdent(t.schema)}.finance_account`
    // a table the install has not guarded yet
    await db.pool.query(`drop policy rowtenancy_legacy on ${table}`)
    await db.pool.query(`alter table ${table} disable row level security`)
    const holder = await connect(db.url)
    await holder.query('begin')
    await holder.query(`select count(*) from ${table}`)
    const { error } = await settle(
      migrateOnline({ db: db.pool, all: true, prepareOnly: true, grantTo: role }),
    )
    expect(String(error)).toMatch(
      new RegExp(
        `Could not lock the legacy tables of schema "${t.schema}" in 8 attempts .*another session holds them.*rerun when it has ended`,
        'is',
      ),
    )
    expect(await hasPolicy(table)).toBe(false)
    await holder.query('commit')
    const report = await migrateOnline({ db: db.pool, all: true, prepareOnly: true, grantTo: role })
    expect(report.ok).toBe(true)
    expect(await hasPolicy(table)).toBe(true)
  }, 120_000)
})
