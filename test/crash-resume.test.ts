import { type ChildProcess, spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type MigrationPlan,
  migrate,
  planMigration,
  readLedger,
  verifyMigration,
} from '../src/entries/migrate.js'
import { quoteIdent } from '../src/sql/quote.js'
import { type EmbeddedServer, startEmbeddedPostgres } from './helpers/embedded-server.js'
import {
  buildLegacyFixture,
  FIXTURE_TABLES,
  type LegacyTenant,
  schemaFingerprint,
} from './helpers/legacy-fixture.js'

/**
 * Crash and resume: `rowtenancy migrate-to-row-tenancy --all --jobs 2` runs as a
 * child process on its own PostgreSQL server and is killed with SIGKILL at
 * seeded random moments (on a given progress event, mid-transaction, or after a
 * random delay), and once PostgreSQL itself is shut down immediately under it
 * (SIGQUIT: crash recovery on restart). It is rerun until it exits 0, and the
 * result is compared with a clean, uninterrupted migration of a copy of the
 * same database (`create database ... template`): identical rows per tenant and
 * table, sequences above every id, the ledger complete and matching the
 * target, and the tenant schemas untouched.
 *
 * migrate-crash.test.ts (the migration's own test) kills the same run on
 * event lines on the shared server; this file adds what needs a server of its
 * own or more time: PostgreSQL stopped under the run, kills on a timer (start-up,
 * planning, ledger creation, sequences), `drop-schemas` killed between drops,
 * the ledger compared table by table with the clean run, `verify`, sequences,
 * and `CRASH_STRATEGY=remap`. The in-process resume cases (a failure
 * mid-tenant, `--model` partial runs, a rerun after success) are in
 * migrate-core / migrate-options. `CRASH_SEED=<n>` replays a run.
 */

const seed = Number(process.env.CRASH_SEED ?? 8_2026)
/** `CRASH_STRATEGY=remap` runs the same scenario with `--id-strategy remap`. */
const strategy = process.env.CRASH_STRATEGY === 'remap' ? 'remap' : 'composite'
const KILLS = 4
const ROOT = fileURLToPath(new URL('..', import.meta.url))

/** mulberry32: the seeded PRNG of the kill schedule. */
function prng(s: number): () => number {
  let a = s
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

let server: EmbeddedServer
let tenants: LegacyTenant[]
let urlA: string
let urlB: string
let poolA: pg.Pool
let poolB: pg.Pool
let before: Record<string, string>
const summary = {
  runs: 0,
  kills: 0,
  killPoints: [] as string[],
  postgresStops: 0,
  rowsChecked: 0,
  tablesCompared: 0,
  ms: 0,
}
const started = Date.now()

/** A pool whose idle clients may see the server go away (the test stops it on purpose). */
function openPool(url: string, max: number): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max })
  pool.on('error', () => {})
  return pool
}

const dbUrl = (name: string) => {
  const u = new URL(server.url)
  u.pathname = `/${name}`
  return u.toString()
}

beforeAll(async () => {
  server = await startEmbeddedPostgres()
  const admin = new pg.Client({ connectionString: server.url })
  await admin.connect()
  await admin.query('create database crash_a')
  urlA = dbUrl('crash_a')
  urlB = dbUrl('crash_b')
  const build = new pg.Pool({ connectionString: urlA, max: 2 })
  tenants = await buildLegacyFixture(build, {
    rows: 40,
    drift: false,
    extraTenants: 9,
    target: strategy,
  })
  await build.end()
  // the reference: a copy of the same legacy database, migrated once without interruption
  await admin.query('create database crash_b template crash_a')
  await admin.end()
  poolA = openPool(urlA, 3)
  poolB = openPool(urlB, 4)
  before = await schemaFingerprint(
    poolA,
    tenants.map((t) => t.schema),
  )
  const clean = await migrate({ db: poolB, all: true, jobs: 2, idStrategy: strategy })
  expect(clean.ok).toBe(true)
}, 120_000)

afterAll(async () => {
  summary.ms = Date.now() - started
  console.log(
    [
      `crash-resume (${strategy}): seed ${seed} (replay: CRASH_SEED=${seed} CRASH_STRATEGY=${strategy})`,
      `  ${tenants?.length ?? 0} tenants, ${summary.runs} CLI runs, ${summary.kills} SIGKILLs, ${summary.postgresStops} PostgreSQL stop(s) under the run`,
      `  kill points: ${summary.killPoints.join(', ')}`,
      `  ${summary.tablesCompared} tenant tables compared with the clean copy, ${summary.rowsChecked} rows checked, ${(summary.ms / 1000).toFixed(1)} s`,
    ].join('\n'),
  )
  await poolA?.end().catch(() => {})
  await poolB?.end().catch(() => {})
  await server?.stop()
})

interface RunResult {
  code: number | null
  signal: NodeJS.Signals | null
  events: string[]
  stderr: string
}

/**
 * Runs the CLI as a child process. The fault is injected after `stopAfterEvents`
 * JSON event lines or `stopAfterMs` milliseconds after the first one (the plan), by calling `fault`.
 */
function runCli(
  stopAfterEvents: number | undefined,
  stopAfterMs: number | undefined,
  fault: (child: ChildProcess) => void,
  args = ['migrate-to-row-tenancy', '--all', '--jobs', '2', '--id-strategy', strategy, '--json'],
  onSpawn?: (child: ChildProcess) => void,
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    summary.runs++
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'src/cli/main.ts', ...args, '--database-url', urlA],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    )
    onSpawn?.(child)
    const events: string[] = []
    let stderr = ''
    let buffered = ''
    let faulted = false
    const inject = () => {
      if (faulted || child.exitCode !== null) return
      faulted = true
      fault(child)
    }
    let timer: NodeJS.Timeout | undefined
    child.stdout.setEncoding('utf8')
    child.stdout.on('data', (chunk: string) => {
      buffered += chunk
      let nl = buffered.indexOf('\n')
      while (nl >= 0) {
        const line = buffered.slice(0, nl)
        buffered = buffered.slice(nl + 1)
        nl = buffered.indexOf('\n')
        try {
          const e = JSON.parse(line) as { type: string; table?: string }
          events.push(e.type === 'table-copied' ? `table-copied(${e.table})` : e.type)
        } catch {
          events.push('?')
        }
        if (stopAfterEvents !== undefined && events.length === stopAfterEvents) inject()
        if (stopAfterMs !== undefined && events.length === 1)
          timer = setTimeout(inject, stopAfterMs)
      }
    })
    child.stderr.on('data', (d) => {
      stderr += d
    })
    // a run that hangs (e.g. after its server went away) is a bug: give up after 60 s
    const hang = setTimeout(() => child.kill('SIGKILL'), 60_000)
    child.on('error', reject)
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      clearTimeout(hang)
      resolve({ code, signal, events, stderr })
    })
  })
}

/**
 * What a checksum covers: the whole row for `composite`; for `remap` (new ids drawn from
 * the shared sequences, which aborted runs advance) every column, each renumbered one
 * translated back to its old value through the id map (the columns as the plan maps them).
 */
async function comparable(pool: pg.Pool, table: string): Promise<string> {
  if (strategy === 'composite') return 'x::text'
  remapped ??= await planMigration(pool, { all: true, idStrategy: 'remap' })
  const plan = remapped.tenants[0]!.tables.find((t) => t.name === table)
  const { rows } = await pool.query(
    `select a.attname from pg_attribute a where a.attrelid = $1::regclass and a.attnum > 0 and not a.attisdropped
      order by a.attnum`,
    [`public.${quoteIdent(table)}`],
  )
  const cols = rows.map((r) => {
    const c = `x.${quoteIdent(r.attname)}`
    const via = plan?.remapColumns.get(r.attname)?.table
    return via
      ? `(select m.old_id from public.rowtenancy_id_map m where m.tenant_id = x.tenant_id::text and m.table_name = '${via}' and m.new_id = ${c})`
      : c
  })
  return `row(${cols.join(', ')})::text`
}
let remapped: MigrationPlan | undefined

/** Tenants the ledger of the crashed database marks done (0 before the ledger exists). */
async function doneTenants(): Promise<number> {
  const ledger = await readLedger(poolA, 'public')
  return [...ledger.values()].filter((e) => e.state === 'done').length
}

/** Per tenant and table: row count and an order-independent checksum of the rows. */
async function targetSums(pool: pg.Pool): Promise<Map<string, string>> {
  const out = new Map<string, string>()
  for (const table of FIXTURE_TABLES) {
    const { rows } = await pool.query(
      `select tenant_id::text as t, count(*)::int as n,
              sum(hashtextextended(${await comparable(pool, table)}, 0))::text as s
         from public.${quoteIdent(table)} x group by 1 order by 1`,
    )
    for (const r of rows) out.set(`${table}/${r.t}`, `${r.n}:${r.s}`)
  }
  const t = await pool.query(
    `select string_agg(id || ':' || slug || ':' || name || ':' || status, ',' order by id) as s from tenants`,
  )
  out.set('tenants', t.rows[0].s)
  const d = await pool.query(
    `select string_agg(tenant_id || ':' || domain || ':' || is_primary, ',' order by domain) as s from tenant_domains`,
  )
  out.set('tenant_domains', d.rows[0].s)
  return out
}

describe('migrate-to-row-tenancy --all --jobs 2, killed and resumed', () => {
  it('SIGKILL at random moments and PostgreSQL stopped under it: the resumed result equals a clean run', async () => {
    const random = prng(seed)
    const plan = await migrate({ db: poolA, all: true, dryRun: true, idStrategy: strategy })
    const tenantCount = plan.tenants.length
    // early, while most tenants are still to copy, so the stop lands mid-run
    const pgStopAt = Math.floor(random() * 2)
    for (let k = 0; k < KILLS; k++) {
      if (k === pgStopAt) {
        // stop PostgreSQL (immediate shutdown) while the run is copying, then restart it
        const r = await runCli(2 + Math.floor(random() * 8), undefined, () => {
          summary.postgresStops++
          process.kill(server.pid!, 'SIGQUIT')
        })
        summary.killPoints.push(`postgres-stop@${r.events.at(-1) ?? 'start'}`)
        // pitfall: a run whose database vanished must fail and exit, not hang or report success
        expect(r.signal, r.stderr).toBeNull()
        expect(r.code, r.stderr).toBe(1)
        await server.stop({ keep: true })
        server = await startEmbeddedPostgres({ dataDir: server.dataDir, port: server.port })
        await poolA.end()
        poolA = openPool(urlA, 3)
        await poolB.end()
        poolB = openPool(urlB, 4)
        continue
      }
      // kill points scaled to what is left, so they land mid-run on a fast machine too:
      // per tenant there are about 11 event lines (start, one per table, verified, done)
      const left = tenantCount - (await doneTenants())
      if (left === 0) break
      const byEvent = random() < 0.5
      const n = 2 + Math.floor(random() * left * 8)
      // a small tenant of this fixture takes a few ms (13 round trips, no flush wait per commit)
      const ms = Math.floor(random() * left * 8)
      const r = await runCli(byEvent ? n : undefined, byEvent ? undefined : ms, (child) => {
        summary.kills++
        child.kill('SIGKILL')
      })
      summary.killPoints.push(
        r.signal === 'SIGKILL'
          ? `kill@${byEvent ? '' : `plan+${ms}ms:`}${r.events.at(-1) ?? 'start'}`
          : `finished-before-kill(${r.code})`,
      )
      if (r.signal !== 'SIGKILL') expect(r.code, r.stderr).toBe(0)
      if (r.code === 0) break
    }
    expect(summary.postgresStops).toBe(1)
    expect(summary.kills, summary.killPoints.join(', ')).toBeGreaterThanOrEqual(1)
    // rerun until it finishes
    let final: RunResult | undefined
    for (let i = 0; i < 5 && final?.code !== 0; i++) {
      final = await runCli(undefined, undefined, () => {})
    }
    expect(final?.code, final?.stderr).toBe(0)

    // identical rows per tenant and table as the clean run
    const a = await targetSums(poolA)
    const b = await targetSums(poolB)
    summary.tablesCompared = [...a.keys()].filter((k) => k.includes('/')).length
    expect(Object.fromEntries(a)).toEqual(Object.fromEntries(b))
    expect(summary.tablesCompared).toBe(tenantCount * FIXTURE_TABLES.length)
    for (const table of FIXTURE_TABLES) {
      const { rows } = await poolA.query(
        `select count(*)::int as n from public.${quoteIdent(table)}`,
      )
      summary.rowsChecked += rows[0].n
    }

    // the ledger: every tenant done, and what it recorded matches the target
    const ledger = await readLedger(poolA, 'public')
    const reference = await readLedger(poolB, 'public')
    expect([...ledger.keys()].sort()).toEqual([...reference.keys()].sort())
    for (const [id, entry] of ledger) {
      expect(entry.state, `tenant ${id}`).toBe('done')
      // remap: the recorded checksums cover the new ids, which differ; the counts do not
      const rowsOf = (e: typeof entry | undefined) =>
        Object.fromEntries(Object.entries(e?.tables ?? {}).map(([t, v]) => [t, v.rows]))
      if (strategy === 'composite') expect(entry.tables).toEqual(reference.get(id)?.tables)
      else expect(rowsOf(entry)).toEqual(rowsOf(reference.get(id)))
    }
    const verified = await verifyMigration({ db: poolA })
    expect(verified.ok, JSON.stringify(verified)).toBe(true)

    // no source schema changed
    expect(
      await schemaFingerprint(
        poolA,
        tenants.map((t) => t.schema),
      ),
    ).toEqual(before)

    // a final rerun skips everything and changes nothing
    const again = await runCli(undefined, undefined, () => {})
    expect(again.code, again.stderr).toBe(0)
    expect(again.events.filter((e) => e === 'tenant-done')).toEqual([])
    expect(Object.fromEntries(await targetSums(poolA))).toEqual(Object.fromEntries(b))
  }, 240_000)

  it('drop-schemas killed midway: each schema is either still there (ledger done) or gone (ledger schema_dropped); a rerun finishes and verify passes', async () => {
    const random = prng(seed + 1)
    const schemas = tenants.map((t) => t.schema)
    const present = async () =>
      new Set(
        (
          await poolA.query('select nspname from pg_namespace where nspname = any($1)', [schemas])
        ).rows.map((x) => x.nspname as string),
      )
    const check = async () => {
      const there = await present()
      for (const [id, entry] of await readLedger(poolA, 'public')) {
        // pitfall: a schema gone while the ledger still says done (or the reverse) loses the only copy's proof
        expect(entry.state, `tenant ${id}`).toBe(
          there.has(entry.schema) ? 'done' : 'schema_dropped',
        )
      }
      return there
    }
    // kill it once `k` schemas are gone (watched from outside), so the kill lands between drops
    const k = 1 + Math.floor(random() * (schemas.length - 2))
    let watching = true
    const r = await runCli(
      undefined,
      undefined,
      () => {},
      ['drop-schemas', '--yes', '--json'],
      (child) => {
        void (async () => {
          while (watching && child.exitCode === null) {
            if (schemas.length - (await present()).size >= k) {
              summary.kills++
              child.kill('SIGKILL')
              return
            }
            await new Promise((res) => setTimeout(res, 10))
          }
        })()
      },
    )
    watching = false
    const left = (await present()).size
    summary.killPoints.push(
      r.signal === 'SIGKILL'
        ? `drop-schemas kill after ${schemas.length - left} of ${schemas.length} dropped`
        : 'drop-schemas finished before the kill',
    )
    await check()
    const again = await runCli(undefined, undefined, () => {}, ['drop-schemas', '--yes', '--json'])
    expect(again.code, again.stderr).toBe(0)
    expect((await check()).size).toBe(0)
    const verified = await verifyMigration({ db: poolA })
    expect(verified.ok, JSON.stringify(verified)).toBe(true)
  }, 120_000)

  it('every shared sequence is above every copied id', async () => {
    const serials: [string, string][] = [
      ['finance_account', 'id'],
      ['author', 'author_id'],
      ['book', 'id'],
      ['tag', 'id'],
      ['film', 'film_id'],
      ['tenants', 'id'],
    ]
    for (const [table, column] of serials) {
      const { rows } = await poolA.query(
        `select (select max(${quoteIdent(column)}) from public.${quoteIdent(table)})::int8 as max,
                nextval(pg_get_serial_sequence($1, $2))::int8 as next`,
        [`public.${table}`, column],
      )
      expect(Number(rows[0].next), `${table}.${column}`).toBeGreaterThan(Number(rows[0].max))
    }
  })
})
