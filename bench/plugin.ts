/**
 * TenantPlugin benchmark, two numbers against baselines measured in the same run:
 *
 * 1. Compile time of a 3-join query (Kysely `.compile()`), with the plugin vs
 *    without it: microseconds per compile and the overhead (target < 10 µs).
 * 2. End-to-end tenant-scoped point-select throughput (queries/s, concurrent
 *    loops on one pool) through the plugin alone (no RLS binding), and through
 *    the plugin plus the execution-time tenant check, vs the same query written
 *    by hand with `where tenant_id = $1` (in Kysely, and in plain pg) on the
 *    same pool, as ratios (target >= 0.95).
 *
 *   npx tsx bench/plugin.ts            # full run
 *   npx tsx bench/plugin.ts --quick    # short run
 *
 * Uses DATABASE_URL when set (a scratch database is created and dropped), else an
 * embedded PostgreSQL.
 */
import { performance } from 'node:perf_hooks'
import { type Generated, Kysely, PostgresDialect } from 'kysely'
import pg from 'pg'
import { runWithTenant } from '../src/context/index.js'
import { checkExecution } from '../src/kysely/execution-check.js'
import { hookDialect } from '../src/kysely/hooked-dialect.js'
import { TenantPlugin } from '../src/kysely/tenant-plugin.js'
import { openScratchDatabase } from './scratch-database.js'

const quick = process.argv.includes('--quick')
const COMPILES = quick ? 20_000 : 200_000
const COMPILE_CHUNK = 500
const CONCURRENCY = 8
const QUERIES = quick ? 1_000 : 2_000
const THROUGHPUT_ROUNDS = quick ? 8 : 40
const TENANTS = 10
const ACCOUNTS = 1_000

interface DB {
  accounts: { tenant_id: Generated<string>; id: string; name: string; currency: string | null }
  transactions: { tenant_id: Generated<string>; id: string; account_id: string; amount: string }
  currencies: { code: string; name: string }
}

const TABLES = ['accounts', 'transactions']

async function main() {
  const scratch = await openScratchDatabase('rt_bench_plugin')
  const pool = new pg.Pool({ connectionString: scratch.url, max: CONCURRENCY })
  pool.on('error', () => {}) // idle clients killed by the final drop database
  try {
    await setup(pool)
    console.log(
      `TenantPlugin benchmark (${quick ? 'quick' : 'full'}; PostgreSQL ${scratch.embedded ? 'embedded' : 'from DATABASE_URL'})`,
    )
    compileBench()
    await throughputBench(pool)
  } finally {
    await pool.end()
    await scratch.close()
  }
}

async function setup(pool: pg.Pool) {
  await pool.query(`
    create table currencies (code text primary key, name text not null);
    create table accounts (tenant_id bigint not null, id bigint not null, name text not null,
      currency text references currencies (code), primary key (tenant_id, id));
    create table transactions (tenant_id bigint not null, id bigint not null, account_id bigint not null,
      amount numeric not null, primary key (tenant_id, id),
      foreign key (tenant_id, account_id) references accounts (tenant_id, id));
    insert into currencies values ('EUR', 'Euro'), ('USD', 'US dollar');
    insert into accounts select t, a, 'acct-' || t || '-' || a, case when a % 2 = 0 then 'EUR' else 'USD' end
      from generate_series(1, ${TENANTS}) t, generate_series(1, ${ACCOUNTS}) a;
    analyze;
  `)
}

/** The 3-join query both compile runs build. */
function threeJoins(db: Kysely<DB>) {
  return db
    .selectFrom('transactions as t')
    .innerJoin('accounts as a', 'a.id', 't.account_id')
    .leftJoin('currencies as c', 'c.code', 'a.currency')
    .innerJoin('accounts as a2', 'a2.id', 'a.id')
    .select(['t.id', 't.amount', 'a.name', 'c.name as currency'])
    .where('t.amount', '>', '10')
    .orderBy('t.id')
    .limit(50)
}

/** µs per compile over `n` compiles. */
function timeChunk(db: Kysely<DB>, n: number): number {
  const start = performance.now()
  let sink = 0
  for (let i = 0; i < n; i++) sink += threeJoins(db).compile().sql.length
  const elapsed = performance.now() - start
  if (sink === 0) throw new Error('unreachable')
  return (elapsed * 1000) / n
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]!
}

/**
 * Plain and plugin compiles alternate in small chunks, so both see the same
 * machine load; the overhead is the median of the paired chunk differences.
 */
function compileBench() {
  const dialect = new PostgresDialect({ pool: async () => ({}) as never })
  const plain = new Kysely<DB>({ dialect })
  const scoped = new Kysely<DB>({ dialect, plugins: [new TenantPlugin({ tables: TABLES })] })
  const withPlugin: number[] = []
  const without: number[] = []
  const diffs: number[] = []
  runWithTenant('3', () => {
    for (let i = 0; i < 10; i++) {
      timeChunk(plain, COMPILE_CHUNK)
      timeChunk(scoped, COMPILE_CHUNK)
    }
    for (let c = 0; c < COMPILES / COMPILE_CHUNK; c++) {
      let a: number
      let b: number
      if (c % 2 === 0) {
        a = timeChunk(plain, COMPILE_CHUNK)
        b = timeChunk(scoped, COMPILE_CHUNK)
      } else {
        b = timeChunk(scoped, COMPILE_CHUNK)
        a = timeChunk(plain, COMPILE_CHUNK)
      }
      without.push(a)
      withPlugin.push(b)
      diffs.push(b - a)
    }
  })
  const a = median(without)
  const b = median(withPlugin)
  const d = median(diffs)
  console.log(
    `\n1. compile a 3-join query (${COMPILES} each, alternating chunks of ${COMPILE_CHUNK}; medians)`,
  )
  console.log(`   without plugin   ${a.toFixed(2)} µs/compile`)
  console.log(`   with plugin      ${b.toFixed(2)} µs/compile`)
  console.log(
    `   overhead         ${d.toFixed(2)} µs/compile (${((d / a) * 100).toFixed(0)}%, median of paired chunks)   target < 10 µs`,
  )
}

type Select = (tenant: string, id: string) => Promise<unknown>

async function run(select: Select): Promise<number> {
  let next = 0
  let seed = 12345
  const rand = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff
    return seed
  }
  const start = performance.now()
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next++ < QUERIES) {
        const tenant = String((rand() % TENANTS) + 1)
        const id = String((rand() % ACCOUNTS) + 1)
        const row = await runWithTenant(tenant, () => select(tenant, id))
        if (row === undefined) throw new Error(`no row for ${tenant}/${id}`)
      }
    }),
  )
  next = 0
  return QUERIES / ((performance.now() - start) / 1000)
}

async function throughputBench(pool: pg.Pool) {
  const plugin = new TenantPlugin({ tables: TABLES })
  const plainDb = new Kysely<DB>({ dialect: new PostgresDialect({ pool }) })
  const pluginDb = new Kysely<DB>({ dialect: new PostgresDialect({ pool }), plugins: [plugin] })
  const checkedPlugin = new TenantPlugin({ tables: TABLES })
  const checkedDb = new Kysely<DB>({
    dialect: hookDialect(new PostgresDialect({ pool }), {
      before: (q) => checkExecution(checkedPlugin, q),
      after: () => undefined,
      skipAfterWhenUndefined: true, // as tenancy.kysely()'s hooks: no audit outside withoutTenant
    }),
    plugins: [checkedPlugin],
  })
  const variants: Record<string, Select> = {
    'pg by hand': (t, id) =>
      pool
        .query('select "id", "name" from "accounts" where "tenant_id" = $1 and "id" = $2', [t, id])
        .then((r) => r.rows[0]),
    'Kysely by hand': (t, id) =>
      plainDb
        .selectFrom('accounts')
        .select(['id', 'name'])
        .where('tenant_id', '=', t)
        .where('id', '=', id)
        .executeTakeFirst(),
    TenantPlugin: (_t, id) =>
      pluginDb
        .selectFrom('accounts')
        .select(['id', 'name'])
        .where('id', '=', id)
        .executeTakeFirst(),
    'TenantPlugin + check': (_t, id) =>
      checkedDb
        .selectFrom('accounts')
        .select(['id', 'name'])
        .where('id', '=', id)
        .executeTakeFirst(),
  }
  const results: Record<string, number[]> = {}
  for (const [label, select] of Object.entries(variants)) {
    results[label] = []
    await run(select) // warm-up
  }
  const entries = Object.entries(variants)
  for (let r = 0; r < THROUGHPUT_ROUNDS; r++) {
    // Rotate the order each round, so no variant always runs first or last.
    const order = entries.map((_, i) => entries[(i + r) % entries.length]!)
    for (const [label, select] of order) results[label]!.push(await run(select))
  }
  const med = Object.fromEntries(Object.entries(results).map(([k, v]) => [k, median(v)]))
  /** Median over rounds of the per-round ratio: both sides ran back to back. */
  const pairedRatio = (label: string, base: string) =>
    median(results[label]!.map((qps, i) => qps / results[base]![i]!))
  console.log(
    `\n2. point select, ${CONCURRENCY} concurrent loops, ${QUERIES} queries per round, ${THROUGHPUT_ROUNDS} rounds (medians; ratios paired per round)`,
  )
  for (const [label, qps] of Object.entries(med)) {
    console.log(
      `   ${label.padEnd(22)} ${qps.toFixed(0).padStart(7)} q/s   ratio vs Kysely by hand ${pairedRatio(label, 'Kysely by hand').toFixed(3)}   vs pg by hand ${pairedRatio(label, 'pg by hand').toFixed(3)}`,
    )
  }
  console.log('   target: TenantPlugin / by hand >= 0.95')
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
