/**
 * Migration benchmark: `migrate({ all: true })` (the engine behind
 * `rowtenancy migrate-to-row-tenancy --all`) against the FAIR anchor, a raw
 * server-side copy: one `INSERT ... SELECT` per table per schema in FK order,
 * one transaction per schema, `session_replication_role = replica` (no
 * foreign-key triggers, no checks, no ledger, one connection). The headline
 * ratio is anchor time / tool time (1.00 = as fast as the server copies; goals:
 * >= 0.7 with verify, >= 0.95 without). Each run also prints its CPU time (the server
 * backends it used, read from /proc, plus this process) and `cpu vs raw`, the anchor's CPU
 * over the run's: steadier than wall clock on a shared machine. Two slower hand-written baselines (with
 * row-by-row foreign-key triggers: autocommit, and one transaction per schema)
 * are printed as well; they flatter the tool and are skipped with --raw-only.
 * With --jobs N > 1 a stricter anchor runs too: the same raw copy on N connections at
 * once (`vs raw xN`), since the migration copies N tenants at a time.
 * All runs use identical copies of one legacy database, in the same run.
 *
 *   npx tsx bench/migrate.ts            # 200 tenants x 8 tables, ~2.2 million rows
 *   npx tsx bench/migrate.ts --quick    # 20 tenants x 8 tables, ~40 thousand rows
 *   npx tsx bench/migrate.ts --quick --raw-only   # only the fair anchor and the tool runs
 *   npx tsx bench/migrate.ts --quick --raw-only --rounds=3   # interleaved, best of 3 each (a loaded machine)
 *   npx tsx bench/migrate.ts --quick --raw-only --fk-indexes   # the shared tables with an index per foreign key
 *   npx tsx bench/migrate.ts --jobs=4
 *   npx tsx bench/migrate.ts --quick --raw-only --remap   # also --id-strategy remap (verified)
 *   npx tsx bench/migrate.ts --one-baseline   # skip the one-tx-per-schema baseline
 *   npx tsx bench/migrate.ts --tool-only --scale=0.3   # diagnose: no baselines, smaller tenants
 *   npx tsx bench/migrate.ts --quick --raw-only --trace   # each migration event with its time from the start
 *   npx tsx bench/migrate.ts --quick --explain --keep-source   # keep the source database (named at the end)
 *   npx tsx bench/migrate.ts --explain --scale=1
 *     # where one tenant's copy spends its time: each statement of the copy and of its
 *     # verification under EXPLAIN ANALYZE (server time, not wall clock; rolled back)
 *   npx tsx bench/migrate.ts --tool-only --verify-only --analyze-after=2
 *     # only the verified --jobs N run; ANALYZE the shared tables after tenant 2, as autovacuum
 *     # may: the tenant being copied is then missing from the statistics (estimated at 1 row)
 *
 * Uses DATABASE_URL when set (scratch databases are created and dropped), else an
 * embedded PostgreSQL.
 */
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import pg from 'pg'
import { migrate } from '../src/entries/migrate.js'
import { sqlContext } from '../src/migrate/copy.js'
import {
  copyWithChecksumStatement,
  sourceChecksumsStatement,
  targetChecksumsStatement,
} from '../src/migrate/copy-checksum-sql.js'
import {
  insertStatement,
  orphanStatement,
  planMigration,
  type Statement,
  sourceChecksumStatement,
  targetChecksumStatement,
} from '../src/migrate/index.js'
import { quoteIdent } from '../src/sql/quote.js'
import { installTenantTables } from '../src/tenants/index.js'
import { startEmbeddedPostgres } from '../test/helpers/embedded-server.js'

const quick = process.argv.includes('--quick')
/** The fair anchor: a raw server-side copy, one transaction per schema, no FK triggers. */
const RAW = 'raw copy: tx/schema, no FK triggers'
const TENANTS = quick ? 20 : 200
const scaleArg = process.argv.find((a) => a.startsWith('--scale='))?.slice(8)
const SCALE = scaleArg ? Number(scaleArg) : quick ? 0.2 : 1.1 // rows per tenant = 10_000 * SCALE
const only = process.argv.includes('--tool-only')
const jobsArg = process.argv.find((a) => a.startsWith('--jobs='))?.slice(7)
const JOBS = jobsArg ? Number(jobsArg) : Math.max(2, Math.min(8, availableParallelism()))
/** The same raw copy with as many connections at once as the migration has jobs (the stricter anchor). */
const RAW_PARALLEL = `${RAW}, ${JOBS} connections`
/** `--analyze-after=N`: ANALYZE the shared tables once N tenants are done, as autovacuum may. */
const analyzeArg = process.argv.find((a) => a.startsWith('--analyze-after='))?.slice(16)
const ANALYZE_AFTER = analyzeArg ? Number(analyzeArg) : undefined
/** `--rounds=N`: the anchor and tool runs N times, interleaved; the best of each is reported. */
const roundsArg = process.argv.find((a) => a.startsWith('--rounds='))?.slice(9)
/** `--remap`: also a verified run with `--id-strategy remap` (every key renumbered, every reference looked up). */
const REMAP = process.argv.includes('--remap')
const ROUNDS = Math.max(1, roundsArg ? Number(roundsArg) : 1)
/**
 * `--fk-indexes`: the shared tables also have an index on every foreign key, `(tenant_id, <column>)`,
 * as Django makes one per ForeignKey and `schema generate` carries them over. The anchor maintains
 * them row by row; an `--all` migration into the empty tables builds them after its copy.
 */
const FK_INDEXES = process.argv.includes('--fk-indexes')

/** The 8 tables of a tenant, in FK order: name, DDL body, rows per tenant, insert select. */
const TABLES: {
  name: string
  cols: string
  pk: string
  fks: string[]
  rows: number
  fill: string
}[] = [
  {
    name: 'customer',
    cols: 'id serial, name text not null, email text not null, created_at timestamptz not null',
    pk: 'id',
    fks: [],
    rows: 1000,
    fill: `select 'Customer ' || i, 'c' || i || '@example.com', timestamptz '2024-01-01' + i * interval '1 hour' from generate_series(1, $N) i`,
  },
  {
    name: 'product',
    cols: 'id serial, name text not null, price numeric(10, 2) not null',
    pk: 'id',
    fks: [],
    rows: 200,
    fill: `select 'Product ' || i, (i % 97) + 0.99 from generate_series(1, $N) i`,
  },
  {
    name: 'orders',
    cols: 'id serial, customer_id int not null, status text not null, created_at timestamptz not null',
    pk: 'id',
    fks: ['customer_id:customer'],
    rows: 2000,
    fill: `select 1 + i % $customer, (array['new', 'paid', 'shipped'])[1 + i % 3], timestamptz '2024-02-01' + i * interval '1 minute' from generate_series(1, $N) i`,
  },
  {
    name: 'order_item',
    cols: 'id serial, order_id int not null, product_id int not null, qty int not null, price numeric(10, 2) not null',
    pk: 'id',
    fks: ['order_id:orders', 'product_id:product'],
    rows: 3000,
    fill: `select 1 + i % $orders, 1 + i % $product, 1 + i % 5, (i % 50) + 0.5 from generate_series(1, $N) i`,
  },
  {
    name: 'invoice',
    cols: 'id serial, order_id int not null, amount numeric(12, 2) not null, issued_at date not null',
    pk: 'id',
    fks: ['order_id:orders'],
    rows: 1500,
    fill: `select 1 + i % $orders, i * 1.5, date '2024-03-01' + i % 300 from generate_series(1, $N) i`,
  },
  {
    name: 'payment',
    cols: 'id serial, invoice_id int not null, amount numeric(12, 2) not null, method text',
    pk: 'id',
    fks: ['invoice_id:invoice'],
    rows: 1300,
    fill: `select 1 + i % $invoice, i * 1.25, case when i % 4 = 0 then null else 'card' end from generate_series(1, $N) i`,
  },
  {
    name: 'note',
    cols: 'id serial, order_id int not null, body text not null',
    pk: 'id',
    fks: ['order_id:orders'],
    rows: 700,
    fill: `select 1 + i % $orders, repeat('note text ', 1 + i % 8) || i from generate_series(1, $N) i`,
  },
  {
    name: 'order_tag',
    cols: 'order_id int not null, tag text not null',
    pk: 'order_id, tag',
    fks: ['order_id:orders'],
    rows: 300,
    fill: `select i, 'tag-' || (i % 7) from generate_series(1, $N) i`,
  },
]

/** Column names of a `cols` list (commas inside parentheses are not separators). */
const columnsOf = (t: (typeof TABLES)[number]) =>
  t.cols.split(/,(?![^(]*\))/).map((x) => x.trim().split(' ')[0]!)

const rowsOf = (t: (typeof TABLES)[number]) => Math.max(1, Math.round(t.rows * SCALE))

async function buildSource(pool: pg.Pool): Promise<number> {
  await installTenantTables(pool, { idType: 'bigint' })
  await pool.query(
    'create table public.customers_client (id int primary key, schema_name text not null unique, name text not null)',
  )
  // Target tables: composite keys, tenant-leading FKs, as `schema generate` makes them.
  for (const t of TABLES) {
    const fks = t.fks.map((f) => {
      const [col, ref] = f.split(':') as [string, string]
      return `, foreign key (tenant_id, ${col}) references public.${ref} (tenant_id, id)`
    })
    await pool.query(
      `create table public.${t.name} (tenant_id bigint not null references public.tenants (id), ${t.cols.replace('serial', 'serial not null')},
         primary key (tenant_id, ${t.pk})${fks.join('')})`,
    )
    for (const f of FK_INDEXES ? t.fks : []) {
      const col = f.split(':')[0]!
      await pool.query(`create index ${t.name}_${col}_idx on public.${t.name} (tenant_id, ${col})`)
    }
  }
  let total = 0
  const counts = Object.fromEntries(TABLES.map((t) => [t.name, rowsOf(t)]))
  const work = Array.from({ length: TENANTS }, (_, i) => i + 1)
  const worker = async () => {
    for (let id = work.shift(); id !== undefined; id = work.shift()) {
      const s = quoteIdent(`tenant_${id}`)
      const c = await pool.connect()
      try {
        await c.query('begin')
        await c.query(`create schema ${s}`)
        await c.query('insert into public.customers_client values ($1, $2, $3)', [
          id,
          `tenant_${id}`,
          `Tenant ${id}`,
        ])
        for (const t of TABLES) {
          const fks = t.fks.map((f) => {
            const [col, ref] = f.split(':') as [string, string]
            return `, foreign key (${col}) references ${s}.${ref} (id)`
          })
          await c.query(
            `create table ${s}.${t.name} (${t.cols}, primary key (${t.pk})${fks.join('')})`,
          )
          const cols = columnsOf(t).filter((x) => x !== 'id')
          const fill = t.fill.replace(/\$(N|[a-z_]+)/g, (_m, k: string) =>
            String(k === 'N' ? counts[t.name] : counts[k]),
          )
          await c.query(`insert into ${s}.${t.name} (${cols.join(', ')}) ${fill}`)
          total += counts[t.name]!
        }
        await c.query('commit')
      } finally {
        c.release()
      }
    }
  }
  await Promise.all(Array.from({ length: JOBS }, worker))
  await pool.query('vacuum analyze')
  return total
}

/**
 * The baseline: a hand-written INSERT ... SELECT per table per schema, in FK order,
 * on one connection; autocommit (each statement its own transaction), or one
 * transaction per schema.
 */
async function baseline(
  pool: pg.Pool,
  perSchemaTransaction: boolean,
  noChecks = false,
  connections = 1,
): Promise<void> {
  await pool.query(
    `insert into public.tenants (id, slug, name) select id, 'tenant-' || id, name from public.customers_client`,
  )
  let next = 1
  const worker = async () => {
    const c = await pool.connect()
    try {
      if (noChecks) await c.query('set session_replication_role = replica')
      for (let id = next++; id <= TENANTS; id = next++) {
        const s = quoteIdent(`tenant_${id}`)
        if (perSchemaTransaction) await c.query('begin')
        for (const t of TABLES) {
          const cols = columnsOf(t)
          await c.query(
            `insert into public.${t.name} (tenant_id, ${cols.join(', ')}) select ${id}, ${cols.join(', ')} from ${s}.${t.name}`,
          )
        }
        if (perSchemaTransaction) await c.query('commit')
      }
    } finally {
      c.release()
    }
  }
  await Promise.all(Array.from({ length: connections }, worker))
}

/** A per-tenant time that grows along the run means some query reads every tenant's rows. */
function trend(ms: number[]): void {
  const avg = (xs: number[]) => Math.round(xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length))
  console.log(
    `  per tenant: first 20 avg ${avg(ms.slice(0, 20))} ms, last 20 avg ${avg(ms.slice(-20))} ms`,
  )
  const at = (type: string, last = false) => {
    const hits = phases.filter((p) => p.type === type)
    return (last ? hits.at(-1) : hits[0])?.t ?? Number.NaN
  }
  const sec = (a: number, b: number) => `${Math.round(b - a)} ms`
  console.log(
    `  phases: plan ${sec(at('start'), at('plan'))}, setup ${sec(at('plan'), at('tenant-start'))}, ` +
      `tenants ${sec(at('tenant-start'), at('tenant-done', true))}, ` +
      `flush and sequences ${sec(at('tenant-done', true), at('sequences'))}, ` +
      `indexes and report ${sec(at('sequences'), at('finished'))}`,
  )
  const sum = ms.reduce((a, b) => a + b, 0)
  let gap = 0
  for (let i = 1; i < phases.length; i++) {
    if (phases[i]!.type === 'tenant-start' && phases[i - 1]!.type === 'tenant-done') {
      gap = Math.max(gap, phases[i]!.t - phases[i - 1]!.t)
    }
  }
  console.log(
    `  tenant time: sum ${(sum / 1000).toFixed(1)} s, max ${Math.max(...ms)} ms; longest gap between tenants ${Math.round(gap)} ms`,
  )
  phases.length = 0
}
const phases: { type: string; t: number }[] = []
const TRACE = process.argv.includes('--trace')
let analyzeOn: pg.Pool | undefined
const onEvent = (e: { type: string }) => {
  phases.push({ type: e.type, t: performance.now() })
  if (TRACE)
    console.log(`    ${(performance.now() - phases[0]!.t).toFixed(1).padStart(7)} ms ${e.type}`)
  const done = phases.filter((p) => p.type === 'tenant-done').length
  if (e.type === 'tenant-done' && done === ANALYZE_AFTER && analyzeOn) {
    // What autovacuum does at an unlucky moment: statistics of a nearly empty table.
    void analyzeOn.query(`analyze ${TABLES.map((t) => `public.${t.name}`).join(', ')}`)
  }
}

/**
 * CPU seconds (user + system) the server backends with these pids have used, from
 * /proc (the server runs on this machine); 0 for a pid that is gone. Wall clock on a
 * shared machine measures the other work too; this does not.
 */
function serverCpuSeconds(pids: Iterable<number>): number {
  let ticks = 0
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      ticks += Number(fields[11]) + Number(fields[12])
    } catch {}
  }
  return ticks / 100
}

async function timed(label: string, fn: () => Promise<unknown>): Promise<number> {
  const start = performance.now()
  await fn()
  const ms = performance.now() - start
  console.log(`${label.padEnd(34)} ${(ms / 1000).toFixed(2).padStart(8)} s`)
  return ms
}

const SCOPED_ON =
  "select set_config('enable_seqscan', 'off', true), set_config('enable_nestloop', 'off', true)"
const SCOPED_OFF =
  "select set_config('enable_seqscan', 'on', true), set_config('enable_nestloop', 'on', true)"

/** Server time (ms) of one statement under EXPLAIN ANALYZE (no per-node timing). */
async function explainMs(c: pg.PoolClient, st: Statement): Promise<number> {
  const { rows } = await c.query(`explain (analyze, timing off, format json) ${st.text}`, st.values)
  const plan = rows[0]['QUERY PLAN'][0]
  return plan['Execution Time'] + plan['Planning Time']
}

/**
 * `--explain`: one tenant of the source, table by table in foreign-key order, under EXPLAIN
 * ANALYZE (server time): the bare copy; the copy that also checksums both sides (one
 * statement); the copy, then the source and the target checksums as separate statements; the
 * orphan check. Each variant starts from an empty target table (TRUNCATE in a savepoint,
 * rolled back after), repeated; the median is kept. Nothing is written.
 */
async function explainTenant(pool: pg.Pool): Promise<void> {
  const plan = await planMigration(pool, {
    all: true,
    source: { legacyTenantsTable: 'public.customers_client' },
  })
  const tp = plan.tenants[0]!
  const ctx = sqlContext(plan, tp)
  const c = await pool.connect()
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
  const reps = 5
  const totals = { insert: 0, one: 0, separate: 0, source: 0, target: 0, orphans: 0 }
  const f = (x: number, w: number) => x.toFixed(1).padStart(w)
  const line = (name: string, n: string, r: typeof totals) =>
    console.log(
      `${name.padEnd(12)} ${n.padStart(6)} ${f(r.insert, 8)} ${f(r.one, 10)} ${f(r.separate, 10)} ${f(r.source, 8)} ${f(r.target, 8)} ${f(r.orphans, 8)}`,
    )
  try {
    console.log(`explain: tenant ${tp.tenant.id}, median of ${reps}, ms of server time`)
    console.log(
      `${'table'.padEnd(12)} ${'rows'.padStart(6)} ${'insert'.padStart(8)} ${'copy+sums'.padStart(10)} ${'ins,src,tgt'.padStart(10)} ${'src sum'.padStart(8)} ${'tgt sum'.padStart(8)} ${'orphans'.padStart(8)}`,
    )
    await c.query('begin')
    await c.query(
      "select set_config('session_replication_role', 'replica', true), set_config('jit', 'off', true)",
    )
    await c.query(
      `insert into public.tenants (id, slug, name) values ($1::bigint, 'explain', 'explain')`,
      [tp.tenant.id],
    )
    for (const t of tp.tables) {
      const fresh = async (fn: () => Promise<number>) => {
        await c.query(`savepoint x; truncate only public.${t.name} cascade`)
        try {
          return await fn()
        } finally {
          await c.query('rollback to savepoint x')
        }
      }
      const ms = { insert: [] as number[], one: [] as number[], src: [] as number[] }
      const tgt: number[] = []
      const sep: number[] = []
      for (let i = 0; i < reps; i++) {
        ms.insert.push(await fresh(() => explainMs(c, insertStatement(ctx, t))))
        ms.one.push(await fresh(() => explainMs(c, copyWithChecksumStatement(ctx, t))))
        sep.push(
          await fresh(async () => {
            const a = await explainMs(c, insertStatement(ctx, t))
            const b = await explainMs(c, sourceChecksumStatement(ctx, t))
            const d = await explainMs(c, targetChecksumStatement(ctx, t))
            ms.src.push(b)
            tgt.push(d)
            return a + b + d
          }),
        )
      }
      // The rows stay, for the orphan check and the tables copied after this one.
      await c.query('truncate only public.' + t.name + ' cascade')
      const ins = insertStatement(ctx, t)
      await c.query(ins.text, ins.values)
      const o = orphanStatement(ctx, t)
      const orph: number[] = []
      // With the planner settings the migration runs its orphan check under (tenantScoped).
      await c.query(SCOPED_ON)
      for (let i = 0; o && i < reps; i++) orph.push(await explainMs(c, o.statement))
      await c.query(SCOPED_OFF)
      const n = (await c.query(`select count(*)::int as n from public.${t.name}`)).rows[0].n
      const row = {
        insert: median(ms.insert),
        one: median(ms.one),
        separate: median(sep),
        source: median(ms.src),
        target: median(tgt),
        orphans: o ? median(orph) : 0,
      }
      for (const k of Object.keys(totals) as (keyof typeof totals)[]) totals[k] += row[k]
      line(t.name, String(n), row)
    }
    line('total', '', totals)
    // As the copy runs its checks: every table in one statement per side (planning included).
    for (const [name, st] of [
      ['source checksums, batched', sourceChecksumsStatement(ctx, tp.tables)],
      ['target checksums, batched', targetChecksumsStatement(ctx, tp.tables)],
    ] as const) {
      const plans: { p: number; e: number }[] = []
      for (let i = 0; i < reps; i++) {
        const { rows } = await c.query(
          `explain (analyze, timing off, format json) ${st.text}`,
          st.values,
        )
        const p = rows[0]['QUERY PLAN'][0]
        plans.push({ p: p['Planning Time'], e: p['Execution Time'] })
      }
      console.log(
        `${name}: planning ${median(plans.map((x) => x.p)).toFixed(1)} ms, execution ${median(plans.map((x) => x.e)).toFixed(1)} ms`,
      )
    }
    console.log(
      `with verify, over the bare copy: one statement ${(totals.one / totals.insert).toFixed(2)}x, ` +
        `separate statements ${(totals.separate / totals.insert).toFixed(2)}x; ` +
        `the orphan check adds ${(totals.orphans / totals.insert).toFixed(2)}x`,
    )
  } finally {
    await c.query('rollback').catch(() => {})
    c.release()
  }
}

async function main(): Promise<void> {
  const server = process.env.DATABASE_URL ? undefined : await startEmbeddedPostgres()
  const base = process.env.DATABASE_URL ?? server!.url
  const admin = new pg.Client({ connectionString: base })
  await admin.connect()
  const tag = randomBytes(3).toString('hex')
  const dbs: string[] = []
  const urlOf = (name: string) => {
    const u = new URL(base)
    u.pathname = `/${name}`
    return u.toString()
  }
  const create = async (name: string, template?: string) => {
    await admin.query(
      `create database ${quoteIdent(name)}${template ? ` template ${quoteIdent(template)}` : ''}`,
    )
    dbs.push(name)
    return urlOf(name)
  }
  try {
    const source = `bench_mig_${tag}`
    const srcPool = new pg.Pool({ connectionString: await create(source), max: JOBS })
    srcPool.on('error', () => {})
    let rows = 0
    await timed(`build ${TENANTS} tenants x ${TABLES.length} tables`, async () => {
      rows = await buildSource(srcPool)
    })
    await srcPool.end()
    console.log(
      `source rows: ${rows.toLocaleString('en')}; jobs: ${JOBS}${FK_INDEXES ? '; shared tables with an index per foreign key' : ''}`,
    )
    if (process.argv.includes('--explain')) {
      const pool = new pg.Pool({ connectionString: urlOf(source), max: 2 })
      pool.on('error', () => {})
      try {
        await explainTenant(pool)
      } finally {
        await pool.end()
      }
      return
    }
    const runs: Record<string, number> = {}
    /** Every round of each run, in order: round i of a run is paired with round i of the anchor. */
    const rounds: Record<string, { ms: number; cpu: number }[]> = {}
    let copiesMade = 0
    const cpuRuns: Record<string, number> = {}
    const run = async (label: string, fn: (pool: pg.Pool) => Promise<unknown>) => {
      const url = await create(`${source}_${copiesMade++}`, source)
      // Backends stay open until their CPU time is read (no idle timeout).
      const pool = new pg.Pool({ connectionString: url, max: JOBS + 2, idleTimeoutMillis: 0 })
      pool.on('error', () => {})
      const pids = new Set<number>()
      pool.on('connect', (client) => {
        const pid = (client as unknown as { processID?: number }).processID
        if (pid) pids.add(pid)
      })
      analyzeOn = pool
      try {
        const client0 = process.cpuUsage()
        // With --rounds, the best (shortest) of the rounds: the least disturbed by other load.
        const ms = await timed(label, () => fn(pool))
        const client = process.cpuUsage(client0)
        const server = serverCpuSeconds(pids)
        const cpu = server + (client.user + client.system) / 1e6
        console.log(
          `${''.padEnd(34)} cpu ${cpu.toFixed(2).padStart(6)} s (server backends ${server.toFixed(2)} s, this process ${(cpu - server).toFixed(2)} s)`,
        )
        runs[label] = Math.min(ms, runs[label] ?? Number.POSITIVE_INFINITY)
        rounds[label] = [...(rounds[label] ?? []), { ms, cpu }]
        cpuRuns[label] = Math.min(cpu, cpuRuns[label] ?? Number.POSITIVE_INFINITY)
      } finally {
        await pool.end()
      }
    }
    const rawOnly = process.argv.includes('--raw-only')
    if (!only && !rawOnly) await run('baseline: INSERT ... SELECT', (pool) => baseline(pool, false))
    if (!only && !rawOnly && !process.argv.includes('--one-baseline')) {
      await run('baseline, one tx per schema', (pool) => baseline(pool, true))
    }
    const verifyOnly = process.argv.includes('--verify-only')
    // The anchor and the tool runs take turns, round after round: load from elsewhere on a
    // shared machine then weighs on both alike.
    for (let round = 1; round <= ROUNDS; round++) {
      if (ROUNDS > 1) console.log(`round ${round} of ${ROUNDS}`)
      if (!verifyOnly) await run(RAW, (pool) => baseline(pool, true, true))
      if (!verifyOnly && JOBS > 1)
        await run(RAW_PARALLEL, (pool) => baseline(pool, true, true, JOBS))
      await run(`migrate --jobs ${JOBS} (verify)`, async (pool) => {
        phases.push({ type: 'start', t: performance.now() })
        const r = await migrate({ db: pool, all: true, jobs: JOBS, onEvent })
        if (!r.ok || r.totals.rows !== rows)
          throw new Error(`migration failed: ${JSON.stringify(r.totals)}`)
        trend(r.tenants.map((t) => t.ms))
      })
      if (!verifyOnly)
        await run(`migrate --jobs ${JOBS} --no-verify`, async (pool) => {
          phases.push({ type: 'start', t: performance.now() })
          const r = await migrate({ db: pool, all: true, jobs: JOBS, verify: false, onEvent })
          if (!r.ok || r.totals.rows !== rows)
            throw new Error(`migration failed: ${JSON.stringify(r.totals)}`)
          trend(r.tenants.map((t) => t.ms))
        })
      if (REMAP)
        await run(`migrate --jobs ${JOBS} remap (verify)`, async (pool) => {
          const r = await migrate({ db: pool, all: true, jobs: JOBS, idStrategy: 'remap' })
          if (!r.ok || r.totals.rows !== rows)
            throw new Error(`migration failed: ${JSON.stringify(r.totals)}`)
        })
    }
    if (!verifyOnly && !rawOnly)
      await run('migrate --jobs 1 (verify)', async (pool) => {
        phases.push({ type: 'start', t: performance.now() })
        const r = await migrate({ db: pool, all: true, jobs: 1, onEvent })
        if (!r.ok) throw new Error('migration failed')
        trend(r.tenants.map((t) => t.ms))
      })
    const raw = runs[RAW] ?? Number.NaN
    const rawCpu = cpuRuns[RAW] ?? Number.NaN
    const rawParallel = runs[RAW_PARALLEL] ?? Number.NaN
    const b = runs['baseline: INSERT ... SELECT'] ?? Number.NaN
    const b2 = runs['baseline, one tx per schema'] ?? Number.NaN
    console.log('')
    console.log(
      `anchor (fair): ${RAW}, ${Math.round(rows / (raw / 1000)).toLocaleString('en')} rows/s; ` +
        "ratio = anchor time / run time (1.00: the server copy's own speed; goals >= 0.70 with verify, >= 0.95 without); " +
        'cpu vs raw = anchor CPU / run CPU (server backends + this process; robust to load from elsewhere)',
    )
    if (JOBS > 1)
      console.log(
        `stricter anchor: ${RAW_PARALLEL}: the same raw copy on ${JOBS} connections at once, ` +
          `as many as the migration's jobs (vs raw x${JOBS} = its time / run time)`,
      )
    console.log(
      `${'run'.padEnd(52)} ${'rows/s'.padStart(10)}   ${'vs raw copy'.padStart(11)}   ${`vs raw x${JOBS}`.padStart(11)}   ${'cpu vs raw'.padStart(10)}   vs autocommit+FK   vs tx/schema+FK`,
    )
    for (const [label, ms] of Object.entries(runs)) {
      const rate = Math.round(rows / (ms / 1000))
      const ratio = (anchor: number, width: number) =>
        (Number.isNaN(anchor) ? '-' : (anchor / ms).toFixed(2)).padStart(width)
      const cpuRatio = (l: string) =>
        (Number.isNaN(rawCpu) || !cpuRuns[l] ? '-' : (rawCpu / cpuRuns[l]).toFixed(2)).padStart(10)
      console.log(
        `${label.padEnd(52)} ${rate.toLocaleString('en').padStart(10)}   ${ratio(raw, 11)}   ${ratio(rawParallel, 11)}   ${cpuRatio(label)}   ${ratio(b, 16)}   ${ratio(b2, 15)}`,
      )
    }
    if (ROUNDS > 1) {
      // On a machine whose speed drifts, the best of each run may come from different moments;
      // a run's round against the anchor's round just before it shares the moment.
      const median = (xs: number[]) => {
        const s = [...xs].sort((a, b) => a - b)
        const m = s.length >> 1
        return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
      }
      console.log(
        `paired rounds (median of ${ROUNDS}: the anchor's time / the run's, in the same round):`,
      )
      for (const label of Object.keys(rounds)) {
        if (label === RAW || !rounds[RAW]) continue
        const pairs = rounds[label]!.map((r, i) => ({ r, a: rounds[RAW]![i]! }))
        const time = pairs.map(({ r, a }) => a.ms / r.ms)
        const cpu = pairs.map(({ r, a }) => a.cpu / r.cpu)
        console.log(
          `  ${label.padEnd(50)} vs raw copy ${median(time).toFixed(2)} (rounds ${time.map((x) => x.toFixed(2)).join(' ')}), cpu ${median(cpu).toFixed(2)}`,
        )
      }
    }
  } catch (err) {
    console.error(err)
    process.exitCode = 1
  } finally {
    const keep = process.argv.includes('--keep-source') ? `bench_mig_${tag}` : ''
    if (keep) console.log(`kept source database ${keep}`)
    for (const d of dbs.reverse().filter((x) => x !== keep))
      await admin.query(`drop database if exists ${quoteIdent(d)} with (force)`).catch(() => {})
    await admin.end()
    await server?.stop()
  }
}

await main()
