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
import { randomBytes } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { type Generated, Kysely, PostgresDialect } from 'kysely'
import pg from 'pg'
import { runWithTenant } from '../src/context/index.js'
import { checkExecution } from '../src/kysely/execution-check.js'
import { hookDialect } from '../src/kysely/hooked-dialect.js'
import { TenantPlugin } from '../src/kysely/tenant-plugin.js'
import { startEmbeddedPostgres } from '../test/helpers/embedded-server.js'

const quick = process.argv.includes('--quick')
const COMPILES = quick ? 20_000 : 200_000
const COMPILE_ROUNDS = quick ? 3 : 7
const CONCURRENCY = 8
const QUERIES = quick ? 4_000 : 20_000
const THROUGHPUT_ROUNDS = quick ? 3 : 7
const TENANTS = 10
const ACCOUNTS = 1_000

interface DB {
  accounts: { tenant_id: Generated<string>; id: string; name: string; currency: string | null }
  transactions: { tenant_id: Generated<string>; id: string; account_id: string; amount: string }
  currencies: { code: string; name: string }
}

const TABLES = ['accounts', 'transactions']

async function main() {
  const server = process.env.DATABASE_URL ? undefined : await startEmbeddedPostgres()
  const adminUrl = process.env.DATABASE_URL ?? server!.url
  const name = `rt_bench_plugin_${randomBytes(4).toString('hex')}`
  const admin = new pg.Client({ connectionString: adminUrl })
  await admin.connect()
  await admin.query(`create database "${name}"`)
  const url = new URL(adminUrl)
  url.pathname = `/${name}`
  const pool = new pg.Pool({ connectionString: url.toString(), max: CONCURRENCY })
  pool.on('error', () => {}) // idle clients killed by the final drop database
  try {
    await setup(pool)
    console.log(
      `TenantPlugin benchmark (${quick ? 'quick' : 'full'}; PostgreSQL ${server ? 'embedded' : 'from DATABASE_URL'})`,
    )
    compileBench()
    await throughputBench(pool)
  } finally {
    await pool.end()
    await admin.query(`drop database if exists "${name}" with (force)`)
    await admin.end()
    await server?.stop()
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

function timeCompiles(db: Kysely<DB>): number {
  const start = performance.now()
  let sink = 0
  for (let i = 0; i < COMPILES; i++) sink += threeJoins(db).compile().sql.length
  const elapsed = performance.now() - start
  if (sink === 0) throw new Error('unreachable')
  return (elapsed * 1000) / COMPILES
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]!
}

function compileBench() {
  const dialect = new PostgresDialect({ pool: async () => ({}) as never })
  const plain = new Kysely<DB>({ dialect })
  const scoped = new Kysely<DB>({ dialect, plugins: [new TenantPlugin({ tables: TABLES })] })
  const withPlugin: number[] = []
  const without: number[] = []
  runWithTenant('3', () => {
    for (let i = 0; i < 2; i++) {
      timeCompiles(plain)
      timeCompiles(scoped)
    }
    for (let r = 0; r < COMPILE_ROUNDS; r++) {
      without.push(timeCompiles(plain))
      withPlugin.push(timeCompiles(scoped))
    }
  })
  const a = median(without)
  const b = median(withPlugin)
  console.log('\n1. compile a 3-join query (median of rounds)')
  console.log(`   without plugin   ${a.toFixed(2)} µs/compile`)
  console.log(`   with plugin      ${b.toFixed(2)} µs/compile`)
  console.log(
    `   overhead         ${(b - a).toFixed(2)} µs/compile (${((b / a - 1) * 100).toFixed(0)}%)   target < 10 µs`,
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
  for (let r = 0; r < THROUGHPUT_ROUNDS; r++) {
    const order = Object.entries(variants)
    if (r % 2 === 1) order.reverse()
    for (const [label, select] of order) results[label]!.push(await run(select))
  }
  const med = Object.fromEntries(Object.entries(results).map(([k, v]) => [k, median(v)]))
  const base = med['Kysely by hand']!
  console.log(
    `\n2. point select, ${CONCURRENCY} concurrent loops, ${QUERIES} queries per round, median of ${THROUGHPUT_ROUNDS} rounds`,
  )
  for (const [label, qps] of Object.entries(med)) {
    console.log(
      `   ${label.padEnd(22)} ${qps.toFixed(0).padStart(7)} q/s   ratio vs Kysely by hand ${(qps / base).toFixed(3)}   vs pg by hand ${(qps / med['pg by hand']!).toFixed(3)}`,
    )
  }
  console.log('   target: TenantPlugin / by hand >= 0.95')
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
