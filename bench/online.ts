/**
 * Online migration benchmark: how long each tenant's write fence lasts during
 * `migrate-to-row-tenancy --online` (from the fence requested, when the
 * tenant's new requests start to queue, to the cut-over's commit), while a
 * writer keeps writing to every tenant through hybrid serving. Two databases
 * from the finance demo's legacy generator:
 *
 * - one tenant of about 100k rows (scale 5: ~75-125k transactions);
 * - the demo's tenants (40 tenants, scale 1, ~100k transactions in all).
 *
 * The anchor, measured in the same run on an identical copy: the OFFLINE copy of
 * the same tenant(s) (`migrate --tenant-id`, one verified transaction each),
 * which is how long that tenant is unavailable when migrated offline. Prints
 * p50 / p95 / max of the fences and fence / offline-copy ratios, with the load
 * average (the machine is shared).
 *
 *   npx tsx bench/online.ts            # both databases
 *   npx tsx bench/online.ts --quick    # 100k tenant only
 *
 * Uses DATABASE_URL (scratch databases are created and dropped).
 */
import { loadavg } from 'node:os'
import pg from 'pg'
import { FINANCE_TABLES, type FinanceDB } from '../examples/finance/db.js'
import { generateLegacy } from '../examples/finance/legacy/generate.js'
import { createCliContext } from '../src/cli/context.js'
import { createOutput } from '../src/cli/output.js'
import { runCli } from '../src/cli/program.js'
import { createTenancy, runWithTenant } from '../src/entries/index.js'
import { migrate } from '../src/entries/migrate.js'
import { fenceStats, migrateOnline } from '../src/migrate/online/index.js'
import { quoteIdent } from '../src/sql/quote.js'

const base = process.env.DATABASE_URL
if (!base)
  throw new Error(
    'Set DATABASE_URL to a PostgreSQL superuser URL (scratch databases are made there).',
  )
const quick = process.argv.includes('--quick')

function urlOf(name: string): string {
  const u = new URL(base!)
  u.pathname = `/${name}`
  return u.toString()
}

async function admin(sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: base })
  await c.connect()
  try {
    await c.query(sql)
  } finally {
    await c.end()
  }
}

async function cli(args: string[]): Promise<void> {
  const sink = { write: () => true } as unknown as NodeJS.WritableStream
  const code = await runCli(
    ['node', 'rowtenancy', ...args],
    createCliContext(createOutput(sink as never, process.stderr)),
  )
  if (code !== 0) throw new Error(`rowtenancy ${args.join(' ')} failed`)
}

/** A legacy database with the shared tables generated, and an identical copy of it. */
async function build(label: string, tenants: number, scale: number) {
  const name = `rt_bench_online_${label}_${Date.now()}`
  await admin(`create database ${quoteIdent(name)}`)
  const pool = new pg.Pool({ connectionString: urlOf(name), max: 6 })
  const legacy = await generateLegacy(pool, { tenants, seed: 1, scale })
  await cli(['init', '--database-url', urlOf(name)])
  await cli([
    'schema',
    'generate',
    '--from-schema',
    legacy.tenants[0]!.schema,
    '--apply',
    '--database-url',
    urlOf(name),
  ])
  await pool.end()
  const copy = `${name}_offline`
  await admin(`create database ${quoteIdent(copy)} template ${quoteIdent(name)}`)
  return { name, copy, legacy }
}

/** Offline: each tenant copied alone (`migrate --tenant-id`), its time as the anchor. */
async function offline(db: string, ids: string[]): Promise<Map<string, number>> {
  const pool = new pg.Pool({ connectionString: urlOf(db), max: 3 })
  const out = new Map<string, number>()
  try {
    for (const id of ids) {
      const started = performance.now()
      const r = await migrate({ db: pool, tenantIds: [id], jobs: 1 })
      if (!r.ok) throw new Error(`offline copy of ${id} failed`)
      out.set(id, performance.now() - started)
    }
  } finally {
    await pool.end()
  }
  return out
}

/** Online, with a writer that inserts into a random tenant every few ms through hybrid serving. */
async function online(
  db: string,
  ids: string[],
): Promise<{ fences: Map<string, number>; writes: number; retried: number }> {
  const pool = new pg.Pool({ connectionString: urlOf(db), max: 6 })
  await migrateOnline({ db: pool, all: true, prepareOnly: true })
  let stop = false
  let writes = 0
  let retried = 0
  // the app's code path: the scoped Kysely of a hybrid tenancy (owner role: a bench, not an app)
  const app = new pg.Pool({ connectionString: urlOf(db), max: 4 })
  const tenancy = createTenancy({
    pool: app,
    tables: FINANCE_TABLES,
    hybrid: true,
    allowUnsafeRole: true,
  })
  const k = tenancy.kysely<FinanceDB>()
  const writer = (async () => {
    while (!stop) {
      const id = ids[Math.floor(Math.random() * ids.length)]!
      try {
        await runWithTenant(id, async () => {
          const account = await k
            .selectFrom('finance_account')
            .select('id')
            .orderBy('id')
            .limit(1)
            .executeTakeFirstOrThrow()
          await k
            .insertInto('finance_transaction')
            .values({
              account_id: account.id,
              amount: '1',
              posted_at: new Date(),
              description: 'bench',
              created_by_id: null,
            })
            .execute()
        })
        writes++
      } catch (err) {
        if ((err as { code?: string }).code !== 'TENANT_MIGRATING') throw err
        retried++
      }
      await new Promise((r) => setTimeout(r, 5))
    }
  })()
  const fences = new Map<string, number>()
  try {
    const report = await migrateOnline({
      db: pool,
      all: true,
      jobs: 1,
      fenceTimeoutMs: 5_000,
      onEvent: (e) => {
        if (process.argv.includes('--steps') && e.type === 'online-tenant' && e.phase === 'done')
          console.log(`  tenant ${e.tenantId}: fence ${e.fenceMs} ms`, e.steps)
      },
    })
    if (!report.ok)
      throw new Error(`online run failed: ${JSON.stringify(report.tenants.filter((t) => t.error))}`)
    for (const t of report.tenants) if (t.fenceMs !== undefined) fences.set(t.tenantId, t.fenceMs)
  } finally {
    stop = true
    await writer
    await tenancy.destroy()
    await pool.end()
  }
  return { fences, writes, retried }
}

async function scenario(label: string, tenants: number, scale: number): Promise<void> {
  const { name, copy, legacy } = await build(label, tenants, scale)
  try {
    const ids = legacy.tenants.map((t) => String(t.id))
    const rows = new Map(
      legacy.tenants.map((t) => [String(t.id), t.transactions + t.accounts + t.users * 2]),
    )
    const load1 = loadavg()[0]!
    const anchor = await offline(copy, ids)
    const { fences, writes, retried } = await online(name, ids)
    const load2 = loadavg()[0]!
    const f = fenceStats([...fences.values()])
    const a = fenceStats([...anchor.values()])
    console.log(
      `\n## ${label}: ${tenants} tenant(s), ${[...rows.values()].reduce((n, x) => n + x, 0)} rows`,
    )
    console.log(
      `fence (online, under a writer: ${writes} writes, ${retried} retryable 503s):  p50 ${f.p50} ms  p95 ${f.p95} ms  max ${f.max} ms`,
    )
    console.log(
      `anchor, offline copy of the same tenant (its downtime offline):  p50 ${a.p50} ms  p95 ${a.p95} ms  max ${a.max} ms`,
    )
    const biggest = [...rows.entries()].sort((x, y) => y[1] - x[1])[0]!
    const fb = fences.get(biggest[0])!
    const ab = anchor.get(biggest[0])!
    console.log(
      `largest tenant ${biggest[0]} (~${biggest[1]} rows): fence ${fb.toFixed(0)} ms vs offline copy ${ab.toFixed(0)} ms: ratio ${(fb / ab).toFixed(2)}`,
    )
    console.log(
      `load average (1 min) before / after: ${load1.toFixed(2)} / ${load2.toFixed(2)} (2 cores, shared machine)`,
    )
  } finally {
    await admin(`drop database if exists ${quoteIdent(name)} with (force)`)
    await admin(`drop database if exists ${quoteIdent(copy)} with (force)`)
  }
}

await scenario('100k-row tenant', 1, 5)
if (!quick) await scenario("the demo's tenants", 40, 1)
