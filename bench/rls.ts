/**
 * RLS + tenant binding benchmark, three parts, all in one run on one server:
 *
 * 1. Throughput: a tenant-scoped point select through Kysely on the binding
 *    dialect against a table under FORCE ROW LEVEL SECURITY, vs the same query
 *    through a plain `PostgresDialect` on an identical table without RLS, on the
 *    SAME pool (the runtime role), as a ratio per paired round (median and spread;
 *    target >= 0.85) for: the default binding (prepared bind, one round trip), the
 *    unnamed bind (`prepareBind: false`), the sealed binding on a table with sealed
 *    policies (target >= 0.75), and raw SQL through the binding (its session reset
 *    rides in the same pipeline). The anchor's shape is measured in the same rounds:
 *    BEGIN + set_config + query + COMMIT, as Prisma's RLS client extension and
 *    Drizzle's rls transaction wrapper send it (four round trips); the default's
 *    ratio to it is reported (goal >= 2x).
 * 2. Round trips and latency per scoped query for each binding (one connection,
 *    sequential), counted from the ReadyForQuery messages the connection received.
 * 3. EXPLAIN of a scoped query on the big table: the tenant predicate of the
 *    policy is an index condition on the tenant-leading primary key.
 *
 *   npx tsx bench/rls.ts            # 1,000,000 rows per table
 *   npx tsx bench/rls.ts --quick    # 100,000 rows, shorter rounds
 *
 * Uses DATABASE_URL when set (a scratch database and role are created and
 * dropped), else an embedded PostgreSQL.
 */
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { Kysely, PostgresDialect, sql } from 'kysely'
import pg from 'pg'
import { seededRandom } from '../examples/finance/legacy/sizes.js'
import { runWithTenant } from '../src/context/index.js'
import { TenantBindingDialect } from '../src/db/tenant-dialect.js'
import { enableRls } from '../src/schema/rls-apply.js'
import { installSeal } from '../src/schema/rls-sealed.js'
import { grantRuntimeRole } from '../src/schema/roles.js'
import { openScratchDatabase } from './scratch-database.js'

const quick = process.argv.includes('--quick')
const ROWS = quick ? 100_000 : 1_000_000
const TENANTS = 1_000
const CONCURRENCY = 8
const ROUND_MS = quick ? 700 : 2_500
const ROUNDS = quick ? 5 : 7
const LATENCY_QUERIES = quick ? 1_000 : 3_000
const CPU_QUERIES = quick ? 3_000 : 10_000
const CLOCK_TICKS = 100 // USER_HZ on Linux
const SEAL_KEY = randomBytes(32).toString('hex')

interface Tables {
  bench_rls: { tenant_id: string; id: string; name: string }
  bench_plain: { tenant_id: string; id: string; name: string }
  bench_sealed: { tenant_id: string; id: string; name: string }
}

/**
 * Random existing rows of one tenant: ids with (id % TENANTS) + 1 = tenant. As in
 * an app, the tenant context is set once per unit of work (a request), here per
 * worker, not per query.
 */
function rowPicker(seed: number, tenant: number): () => { tenant: string; id: string } {
  const next = seededRandom(seed)
  const perTenant = Math.floor(ROWS / TENANTS)
  return () => {
    const k = 1 + Math.floor(next() * (perTenant - 1))
    return { tenant: String(tenant), id: String(tenant - 1 + k * TENANTS) }
  }
}

type Run = (pick: () => { tenant: string; id: string }) => Promise<unknown>

async function throughput(run: Run) {
  const deadline = performance.now() + ROUND_MS
  let ops = 0
  await Promise.all(
    Array.from({ length: CONCURRENCY }, (_, w) =>
      runWithTenant(String(w + 1), async () => {
        const pick = rowPicker(1000 + w, w + 1)
        while (performance.now() < deadline) {
          await run(pick)
          ops++
        }
      }),
    ),
  )
  return (ops * 1000) / ROUND_MS
}

/** CPU seconds (user + system) a local process has used, from /proc; undefined when unreadable (remote server). */
function procCpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS
  } catch {
    return undefined
  }
}

/**
 * CPU per query, client (this process) + server (the backend), for N sequential
 * queries on one connection: unlike wall-clock throughput it hardly moves when
 * other processes load the machine, so it gives a steadier capacity ratio.
 */
async function cpuPerQuery(
  run: Run,
  backendPid: number,
): Promise<{ client: number; server: number } | undefined> {
  const pick = rowPicker(99, 7)
  const s0 = procCpuSeconds(backendPid)
  const c0 = process.cpuUsage()
  await runWithTenant('7', async () => {
    for (let i = 0; i < CPU_QUERIES; i++) await run(pick)
  })
  const c = process.cpuUsage(c0)
  const s1 = procCpuSeconds(backendPid)
  if (s0 === undefined || s1 === undefined) return undefined
  return { client: (c.user + c.system) / CPU_QUERIES, server: ((s1 - s0) * 1e6) / CPU_QUERIES }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const spread = (xs: number[]) =>
  `${Math.min(...xs).toFixed(2)}-${Math.max(...xs).toFixed(2)} (rounds: ${xs.map((x) => x.toFixed(2)).join(' ')})`
const fmt = (n: number) => Math.round(n).toLocaleString('en-US')

async function main() {
  const scratch = await openScratchDatabase('rowtenancy_bench_rls')
  const { admin } = scratch
  const role = `rt_bench_runtime_${randomBytes(4).toString('hex')}`
  const password = randomBytes(8).toString('hex')
  const dbUrl = new URL(scratch.url)
  const owner = new pg.Pool({ connectionString: dbUrl.toString(), max: 2 })
  owner.on('error', () => {})
  let runtime: pg.Pool | undefined
  try {
    console.log(
      `rowtenancy RLS bench: ${fmt(ROWS)} rows per table, ${TENANTS} tenants${quick ? ' (quick)' : ''}`,
    )
    const t0 = performance.now()
    for (const table of ['bench_rls', 'bench_plain', 'bench_sealed']) {
      await owner.query(`create table ${table} (
        tenant_id bigint not null, id bigint not null, name text not null, primary key (tenant_id, id))`)
      await owner.query(
        `insert into ${table} select (g % ${TENANTS}) + 1, g, md5(g::text) from generate_series(1, ${ROWS}) g`,
      )
    }
    await enableRls(owner, [{ name: 'bench_rls' }])
    await installSeal(owner, { key: SEAL_KEY })
    await enableRls(owner, [{ name: 'bench_sealed' }], { sealed: true })
    for (const table of ['bench_rls', 'bench_plain', 'bench_sealed']) {
      await owner.query(`vacuum analyze ${table}`)
    }
    await grantRuntimeRole(owner, { role })
    await owner.query(`alter role "${role}" password '${password}'`)
    console.log(`setup: ${((performance.now() - t0) / 1000).toFixed(1)} s`)

    const runtimeUrl = new URL(dbUrl.toString())
    runtimeUrl.username = role
    runtimeUrl.password = password
    runtime = new pg.Pool({ connectionString: runtimeUrl.toString(), max: CONCURRENCY })
    runtime.on('error', () => {})
    // Every Kysely instance shares the runtime pool (not destroyed: that would end it).
    const bound = new Kysely<Tables>({ dialect: new TenantBindingDialect({ pool: runtime }) })
    const plain = new Kysely<Tables>({ dialect: new PostgresDialect({ pool: runtime }) })
    const boundUnnamed = new Kysely<Tables>({
      dialect: new TenantBindingDialect({ pool: runtime, prepareBind: false }),
    })
    const sealed = new Kysely<Tables>({
      dialect: new TenantBindingDialect({ pool: runtime, binding: 'sealed', sealKey: SEAL_KEY }),
    })

    // 1. throughput
    // The same point select; the tenant context is already set (per worker).
    const select =
      (db: Kysely<Tables>, table: keyof Tables): Run =>
      (pick) => {
        const { tenant, id } = pick()
        return db
          .selectFrom(table)
          .select(['id', 'name'])
          .where('tenant_id', '=', tenant)
          .where('id', '=', id)
          .executeTakeFirstOrThrow()
      }
    // The anchor's shape (Prisma RLS extension, Drizzle rls wrapper): its own transaction.
    const anchorOn =
      (db: Kysely<Tables>): Run =>
      (pick) => {
        const { tenant, id } = pick()
        return db.transaction().execute(async (trx) => {
          await sql`select set_config('rowtenancy.tenant_id', ${tenant}, true)`.execute(trx)
          return trx
            .selectFrom('bench_rls')
            .select(['id', 'name'])
            .where('tenant_id', '=', tenant)
            .where('id', '=', id)
            .executeTakeFirstOrThrow()
        })
      }
    const rawOn =
      (db: Kysely<Tables>): Run =>
      (pick) => {
        const { tenant, id } = pick()
        return sql`select id, name from bench_rls where tenant_id = ${tenant} and id = ${id}`.execute(
          db,
        )
      }
    const variants: [string, Run][] = [
      ['baseline', select(plain, 'bench_plain')],
      ['scoped', select(bound, 'bench_rls')],
      ['unnamed', select(boundUnnamed, 'bench_rls')],
      ['sealed', select(sealed, 'bench_sealed')],
      ['raw', rawOn(bound)],
      ['anchor', anchorOn(plain)],
    ]
    for (const [, run] of variants) await throughput(run) // warm up: connections, plans, role checks
    const q = new Map<string, number[]>(variants.map(([name]) => [name, []]))
    for (let r = 0; r < ROUNDS; r++) {
      // paired rounds, the order rotating, so load from elsewhere hits every variant alike
      for (let i = 0; i < variants.length; i++) {
        const [name, run] = variants[(i + r) % variants.length]!
        q.get(name)!.push(await throughput(run))
      }
    }
    const per = (name: string) => q.get(name)!
    const ratio = (a: string, b: string) => per(a).map((x, i) => x / per(b)[i]!)
    const m = (name: string) => fmt(median(per(name)))
    console.log(
      `\n1. point-select throughput (${CONCURRENCY} concurrent, ${ROUNDS} paired rounds of ${ROUND_MS} ms, medians)`,
    )
    console.log(`   Kysely PostgresDialect, no RLS (baseline):               ${m('baseline')} q/s`)
    console.log(`   default binding (prepared bind), FORCE RLS:              ${m('scoped')} q/s`)
    console.log(`   unnamed bind (prepareBind: false), FORCE RLS:            ${m('unnamed')} q/s`)
    console.log(`   sealed binding, sealed policy:                           ${m('sealed')} q/s`)
    console.log(`   raw SQL through the default binding (+ session reset):   ${m('raw')} q/s`)
    console.log(`   anchor: BEGIN + set_config + query + COMMIT, FORCE RLS:  ${m('anchor')} q/s`)
    const report = (label: string, xs: number[], target: string) =>
      console.log(
        `   ${label.padEnd(38)} ${median(xs).toFixed(2)}  spread ${spread(xs)}  ${target}`,
      )
    report('default / baseline:', ratio('scoped', 'baseline'), '(target >= 0.85)')
    report('unnamed bind / baseline:', ratio('unnamed', 'baseline'), '')
    report('sealed / baseline:', ratio('sealed', 'baseline'), '(target >= 0.75)')
    report('raw SQL + reset / baseline:', ratio('raw', 'baseline'), '')
    report('default / anchor (Prisma, Drizzle):', ratio('scoped', 'anchor'), '(goal >= 2x)')

    // 1b. CPU per query (client + server backend) on one connection, interleaved rounds:
    // steadier than wall-clock throughput on a loaded machine.
    const cpuPool = new pg.Pool({ connectionString: runtimeUrl.toString(), max: 1 })
    cpuPool.on('error', () => {})
    const cpu = {
      plain: new Kysely<Tables>({ dialect: new PostgresDialect({ pool: cpuPool }) }),
      bound: new Kysely<Tables>({ dialect: new TenantBindingDialect({ pool: cpuPool }) }),
      unnamed: new Kysely<Tables>({
        dialect: new TenantBindingDialect({ pool: cpuPool, prepareBind: false }),
      }),
      sealed: new Kysely<Tables>({
        dialect: new TenantBindingDialect({ pool: cpuPool, binding: 'sealed', sealKey: SEAL_KEY }),
      }),
    }
    const pid = (await cpuPool.query('select pg_backend_pid() as pid')).rows[0].pid as number
    const cpuVariants: [string, Run][] = [
      ['baseline (no RLS, no binding)', select(cpu.plain, 'bench_plain')],
      ['default binding, FORCE RLS', select(cpu.bound, 'bench_rls')],
      ['unnamed bind, FORCE RLS', select(cpu.unnamed, 'bench_rls')],
      ['sealed binding, sealed policy', select(cpu.sealed, 'bench_sealed')],
      ['anchor: BEGIN+set_config+query+COMMIT', anchorOn(cpu.plain)],
    ]
    for (const [, run] of cpuVariants) await runWithTenant('1', () => run(rowPicker(1, 1)))
    if (procCpuSeconds(pid) !== undefined) {
      const costs = new Map<string, { total: number[]; client: number[]; server: number[] }>()
      for (let r = 0; r < 3; r++) {
        for (const [name, run] of cpuVariants) {
          const c = (await cpuPerQuery(run, pid))!
          const e = costs.get(name) ?? { total: [], client: [], server: [] }
          e.total.push(c.client + c.server)
          e.client.push(c.client)
          e.server.push(c.server)
          costs.set(name, e)
        }
      }
      console.log(
        `\n1b. CPU per point select, client + server backend (${fmt(CPU_QUERIES)} sequential queries, median of 3 interleaved rounds)`,
      )
      const base = median(costs.get(cpuVariants[0]![0])!.total)
      for (const [name] of cpuVariants) {
        const e = costs.get(name)!
        const total = median(e.total)
        console.log(
          `   ${name.padEnd(38)} ${total.toFixed(0).padStart(4)} µs  (client ${median(e.client).toFixed(0)}, server ${median(e.server).toFixed(0)})  capacity ratio ${(base / total).toFixed(2)}`,
        )
      }
    } else {
      console.log('\n1b. CPU per query: skipped (the server is not a local process)')
    }
    await cpuPool.end()

    // 2. round trips and latency per scoped query, by binding, on ONE connection
    const onePool = new pg.Pool({ connectionString: runtimeUrl.toString(), max: 1 })
    onePool.on('error', () => {})
    let syncs = 0
    onePool.on('connect', (c) => {
      ;(c as unknown as { connection: pg.Connection }).connection.on('readyForQuery', () => syncs++)
    })
    const one = {
      plain: new Kysely<Tables>({ dialect: new PostgresDialect({ pool: onePool }) }),
      bound: new Kysely<Tables>({ dialect: new TenantBindingDialect({ pool: onePool }) }),
      unnamed: new Kysely<Tables>({
        dialect: new TenantBindingDialect({ pool: onePool, prepareBind: false }),
      }),
      sealed: new Kysely<Tables>({
        dialect: new TenantBindingDialect({ pool: onePool, binding: 'sealed', sealKey: SEAL_KEY }),
      }),
      setLocal: new Kysely<Tables>({
        dialect: new TenantBindingDialect({ pool: onePool, binding: 'set_local' }),
      }),
    }
    const options: [string, Run][] = [
      ['unbound query, no RLS table (floor)', select(one.plain, 'bench_plain')],
      ['anchor: BEGIN; set_config; query; COMMIT', anchorOn(one.plain)],
      ['default: prepared bind + query, one Sync', select(one.bound, 'bench_rls')],
      ['unnamed bind + query (prepareBind: false)', select(one.unnamed, 'bench_rls')],
      ['sealed: prepared sealed bind + query', select(one.sealed, 'bench_sealed')],
      ['raw SQL: bind + query + session reset', rawOn(one.bound)],
      ['SET LOCAL: BEGIN; SET LOCAL; query; COMMIT', select(one.setLocal, 'bench_rls')],
    ]
    console.log(
      `\n2. per scoped query, one connection, sequential (${fmt(LATENCY_QUERIES)} queries each, median of 3 interleaved rounds)`,
    )
    const latency = new Map<string, number[]>()
    const trips = new Map<string, number>()
    await runWithTenant('7', async () => {
      const pick = rowPicker(7, 7)
      for (const [, fn] of options) for (let i = 0; i < 200; i++) await fn(pick)
      for (let round = 0; round < 3; round++) {
        // rounds interleave the options, so load from elsewhere hits them alike
        for (const [name, fn] of options) {
          syncs = 0
          const start = performance.now()
          for (let i = 0; i < LATENCY_QUERIES; i++) await fn(pick)
          const us = ((performance.now() - start) * 1000) / LATENCY_QUERIES
          latency.set(name, [...(latency.get(name) ?? []), us])
          trips.set(name, syncs / LATENCY_QUERIES)
        }
      }
    })
    for (const [name] of options) {
      console.log(
        `   ${name.padEnd(46)} ${trips.get(name)!.toFixed(2)} round trip(s)  ${median(latency.get(name)!).toFixed(0).padStart(4)} µs/query`,
      )
    }
    const leftover = await onePool.query(
      `select current_setting('rowtenancy.tenant_id', true) as t, (select count(*) from bench_rls)::int as n`,
    )
    console.log(
      `   a plain query on that connection afterwards: setting ${JSON.stringify(leftover.rows[0].t)}, ${leftover.rows[0].n} rows visible (nothing carried over)`,
    )
    await onePool.end()

    // 3. EXPLAIN a scoped query that names no tenant: RLS alone adds it, as an index condition
    const id = String(Math.floor(ROWS / 2))
    const tenant = String((Number(id) % TENANTS) + 1)
    const plan = await runWithTenant(tenant, () =>
      sql<{
        'QUERY PLAN': string
      }>`explain select id, name from bench_rls where id = ${id}`.execute(bound),
    )
    const count = await runWithTenant(tenant, () =>
      sql<{
        'QUERY PLAN': string
      }>`explain (analyze, costs off, timing off) select count(*) from bench_rls`.execute(bound),
    )
    console.log(
      `\n3. EXPLAIN on ${fmt(ROWS)} rows, bound to tenant ${tenant}, the query names no tenant:`,
    )
    console.log(`   select id, name from bench_rls where id = $1`)
    for (const r of plan.rows) console.log(`     ${r['QUERY PLAN']}`)
    console.log(`   select count(*) from bench_rls   (explain analyze)`)
    for (const r of count.rows) console.log(`     ${r['QUERY PLAN']}`)
    const planText = [...plan.rows, ...count.rows].map((r) => r['QUERY PLAN']).join('\n')
    const indexed =
      /Index (Only )?Scan using bench_rls_pkey/.test(planText) && !/Seq Scan/.test(planText)
    console.log(`   tenant-leading index used, no sequential scan: ${indexed ? 'yes' : 'NO'}`)
  } finally {
    await runtime?.end().catch(() => {})
    await owner.end().catch(() => {})
    // the database goes first: the role cannot be dropped while it holds grants in it
    await admin.query(`drop database if exists "${scratch.name}" with (force)`).catch(() => {})
    await admin.query(`drop role if exists "${role}"`).catch(() => {})
    await scratch.close()
  }
}

await main()
