/**
 * RLS + tenant binding benchmark, three parts, all in one run on one server:
 *
 * 1. Throughput: a tenant-scoped point select through Kysely on the binding
 *    dialect against a table under FORCE ROW LEVEL SECURITY, vs the same query
 *    through a plain `PostgresDialect` on an identical table without RLS, on the
 *    SAME pool (the runtime role), as a ratio (target >= 0.8); also the binding
 *    dialect with `prepareBind: true` (bind statement prepared once per connection).
 * 2. Round trips and latency per scoped query for the binding options
 *    considered (one connection, sequential): naive (BEGIN; set_config($1);
 *    query; COMMIT), simple-protocol (`BEGIN; SELECT set_config('<lit>')` in one
 *    string, query, COMMIT), pipelined set_config (chosen: bind + query + one
 *    Sync), pipelined SET LOCAL (the Citus mode).
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
import { bindStatement } from '../src/db/binding.js'
import { runPipelined, type Statement } from '../src/db/pipelined-query.js'
import { TenantBindingDialect } from '../src/db/tenant-dialect.js'
import { enableRls } from '../src/schema/rls-apply.js'
import { grantRuntimeRole } from '../src/schema/roles.js'
import { openScratchDatabase } from './scratch-database.js'

const quick = process.argv.includes('--quick')
const ROWS = quick ? 100_000 : 1_000_000
const TENANTS = 1_000
const CONCURRENCY = 8
const ROUND_MS = quick ? 700 : 2_500
const ROUNDS = quick ? 5 : 7
const LATENCY_QUERIES = quick ? 1_000 : 3_000
const CPU_QUERIES = quick ? 5_000 : 10_000
const CLOCK_TICKS = 100 // USER_HZ on Linux

interface Tables {
  bench_rls: { tenant_id: string; id: string; name: string }
  bench_plain: { tenant_id: string; id: string; name: string }
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
    for (const table of ['bench_rls', 'bench_plain']) {
      await owner.query(`create table ${table} (
        tenant_id bigint not null, id bigint not null, name text not null, primary key (tenant_id, id))`)
      await owner.query(
        `insert into ${table} select (g % ${TENANTS}) + 1, g, md5(g::text) from generate_series(1, ${ROWS}) g`,
      )
    }
    await enableRls(owner, [{ name: 'bench_rls' }])
    await owner.query('vacuum analyze bench_rls')
    await owner.query('vacuum analyze bench_plain')
    await grantRuntimeRole(owner, { role })
    await owner.query(`alter role "${role}" password '${password}'`)
    console.log(`setup: ${((performance.now() - t0) / 1000).toFixed(1)} s`)

    const runtimeUrl = new URL(dbUrl.toString())
    runtimeUrl.username = role
    runtimeUrl.password = password
    runtime = new pg.Pool({ connectionString: runtimeUrl.toString(), max: CONCURRENCY })
    runtime.on('error', () => {})
    // Both Kysely instances share the runtime pool (not destroyed: that would end it).
    const bound = new Kysely<Tables>({ dialect: new TenantBindingDialect({ pool: runtime }) })
    const plain = new Kysely<Tables>({ dialect: new PostgresDialect({ pool: runtime }) })
    const boundPrepared = new Kysely<Tables>({
      dialect: new TenantBindingDialect({ pool: runtime, prepareBind: true }),
    })

    // 1. throughput
    // The same point select; the tenant context is already set (per worker).
    const select =
      (db: Kysely<Tables>, table: 'bench_rls' | 'bench_plain'): Run =>
      (pick) => {
        const { tenant, id } = pick()
        return db
          .selectFrom(table)
          .select(['id', 'name'])
          .where('tenant_id', '=', tenant)
          .where('id', '=', id)
          .executeTakeFirstOrThrow()
      }
    const scoped = select(bound, 'bench_rls')
    const baseline = select(plain, 'bench_plain')
    const boundNoRls = select(bound, 'bench_plain')
    const scopedPrepared = select(boundPrepared, 'bench_rls')
    const rawPg = async (pick: () => { tenant: string; id: string }) => {
      const { tenant, id } = pick()
      await runtime!.query('select id, name from bench_plain where tenant_id = $1 and id = $2', [
        tenant,
        id,
      ])
    }
    await throughput(scoped) // warm up: connections, plans, the role check
    await throughput(baseline)
    await throughput(scopedPrepared)
    const results = {
      scoped: [] as number[],
      scopedPrepared: [] as number[],
      baseline: [] as number[],
      rawPg: [] as number[],
      boundNoRls: [] as number[],
    }
    const ratios: number[] = []
    const preparedRatios: number[] = []
    for (let r = 0; r < ROUNDS; r++) {
      // paired A/B rounds, order alternating, so load from elsewhere hits both sides alike
      const baseFirst = r % 2 === 0
      const x = await throughput(baseFirst ? baseline : scoped)
      const y = await throughput(baseFirst ? scoped : baseline)
      const [base, scope] = baseFirst ? [x, y] : [y, x]
      results.baseline.push(base)
      results.scoped.push(scope)
      ratios.push(scope / base)
      const prepared = await throughput(scopedPrepared)
      results.scopedPrepared.push(prepared)
      preparedRatios.push(prepared / base)
      results.boundNoRls.push(await throughput(boundNoRls))
      results.rawPg.push(await throughput(rawPg))
    }
    const s = median(results.scoped)
    const b = median(results.baseline)
    console.log(
      `\n1. point-select throughput (${CONCURRENCY} concurrent, median of ${ROUNDS} rounds)`,
    )
    console.log(
      `   raw pg, no RLS, no binding:                     ${fmt(median(results.rawPg))} q/s`,
    )
    console.log(`   Kysely PostgresDialect, no RLS (baseline):      ${fmt(b)} q/s`)
    console.log(
      `   Kysely binding dialect, no RLS (binding only):  ${fmt(median(results.boundNoRls))} q/s`,
    )
    console.log(`   Kysely binding dialect, FORCE RLS (scoped):     ${fmt(s)} q/s`)
    console.log(
      `   Kysely binding dialect, FORCE RLS, prepareBind: ${fmt(median(results.scopedPrepared))} q/s`,
    )
    console.log(
      `   ratio scoped / baseline: ${median(ratios).toFixed(2)} (median of paired rounds: ${ratios.map((x) => x.toFixed(2)).join(' ')}; target >= 0.80)`,
    )
    console.log(
      `   ratio scoped, pipelined, prepared bind (prepareBind: true) / baseline: ${median(preparedRatios).toFixed(2)} (rounds: ${preparedRatios.map((x) => x.toFixed(2)).join(' ')})`,
    )

    // 1b. CPU per query (client + server backend), one connection each, paired rounds
    const cpuPool = new pg.Pool({ connectionString: runtimeUrl.toString(), max: 1 })
    cpuPool.on('error', () => {})
    const cpuBound = new Kysely<Tables>({ dialect: new TenantBindingDialect({ pool: cpuPool }) })
    const cpuPlain = new Kysely<Tables>({ dialect: new PostgresDialect({ pool: cpuPool }) })
    const pid = (await cpuPool.query('select pg_backend_pid() as pid')).rows[0].pid as number
    const cpuScoped = select(cpuBound, 'bench_rls')
    const cpuBase = select(cpuPlain, 'bench_plain')
    await runWithTenant('1', () => cpuScoped(rowPicker(1, 1)))
    if (procCpuSeconds(pid) !== undefined) {
      const costs = {
        scoped: [] as number[],
        baseline: [] as number[],
        client: [0, 0],
        server: [0, 0],
      }
      for (let r = 0; r < 3; r++) {
        const base = (await cpuPerQuery(cpuBase, pid))!
        const scope = (await cpuPerQuery(cpuScoped, pid))!
        costs.baseline.push(base.client + base.server)
        costs.scoped.push(scope.client + scope.server)
        costs.client = [costs.client[0]! + base.client / 3, costs.client[1]! + scope.client / 3]
        costs.server = [costs.server[0]! + base.server / 3, costs.server[1]! + scope.server / 3]
      }
      const cb = median(costs.baseline)
      const cs = median(costs.scoped)
      console.log(
        `\n1b. CPU per point select, client + server backend (${fmt(CPU_QUERIES)} sequential queries, median of 3)`,
      )
      console.log(
        `   baseline (no RLS, no binding): ${cb.toFixed(0)} µs  (client ${costs.client[0]!.toFixed(0)}, server ${costs.server[0]!.toFixed(0)})`,
      )
      console.log(
        `   scoped (binding + FORCE RLS):  ${cs.toFixed(0)} µs  (client ${costs.client[1]!.toFixed(0)}, server ${costs.server[1]!.toFixed(0)})`,
      )
      console.log(
        `   capacity ratio baseline CPU / scoped CPU: ${(cb / cs).toFixed(2)}  (target >= 0.80)`,
      )
    } else {
      console.log('\n1b. CPU per query: skipped (the server is not a local process)')
    }
    await cpuPool.end()

    // 2. round trips and latency per scoped query, by binding option
    const client = await runtime.connect()
    let syncs = 0
    ;(client as unknown as { connection: pg.Connection }).connection.on(
      'readyForQuery',
      () => syncs++,
    )
    const query = 'select id, name from bench_rls where tenant_id = $1 and id = $2'
    const BIND_SQL = `select set_config('rowtenancy.tenant_id', $1, true)`
    await client.query({ name: 'rowtenancy_bench_bind', text: BIND_SQL, values: ['1'] })
    const options: [string, (t: string, id: string) => Promise<unknown>][] = [
      [
        'unbound query, no RLS table (floor)',
        (t, id) =>
          client.query('select id, name from bench_plain where tenant_id = $1 and id = $2', [
            t,
            id,
          ]),
      ],
      [
        'naive: BEGIN; set_config($1); query; COMMIT',
        async (t, id) => {
          await client.query('begin')
          await client.query(`select set_config('rowtenancy.tenant_id', $1, true)`, [t])
          await client.query(query, [t, id])
          await client.query('commit')
        },
      ],
      [
        'simple: "BEGIN; SELECT set_config(lit)"; query; COMMIT',
        async (t, id) => {
          await client.query(
            `begin; select set_config('rowtenancy.tenant_id', '${Number(t)}', true)`,
          )
          await client.query(query, [t, id])
          await client.query('commit')
        },
      ],
      [
        'pipelined set_config + query, one Sync (chosen)',
        (t, id) =>
          runPipelined(client, [bindStatement('set_config', 'bigint', t)], {
            text: query,
            values: [t, id],
          }),
      ],
      [
        'pipelined, bind statement prepared once (not chosen)',
        (t, id) =>
          runPipelined(
            client,
            [{ text: BIND_SQL, values: [t], prepared: 'rowtenancy_bench_bind' }],
            { text: query, values: [t, id] },
          ),
      ],
      [
        'pipelined BEGIN; SET LOCAL; query; COMMIT (Citus)',
        (t, id) =>
          runPipelined(
            client,
            [{ text: 'begin' }, bindStatement('set_local', 'bigint', t)],
            { text: query, values: [t, id] },
            [{ text: 'commit' } satisfies Statement],
          ),
      ],
    ]
    console.log(
      `\n2. per scoped query, one connection, sequential (${fmt(LATENCY_QUERIES)} queries each, median of 3 interleaved rounds)`,
    )
    const pick = rowPicker(7, 7)
    const latency = new Map<string, number[]>()
    const trips = new Map<string, number>()
    for (const [, fn] of options) {
      for (let i = 0; i < 200; i++) await fn(...(Object.values(pick()) as [string, string]))
    }
    for (let round = 0; round < 3; round++) {
      // rounds interleave the options, so load from elsewhere hits them alike
      for (const [name, fn] of options) {
        syncs = 0
        const start = performance.now()
        for (let i = 0; i < LATENCY_QUERIES; i++) {
          const { tenant, id } = pick()
          await fn(tenant, id)
        }
        const us = ((performance.now() - start) * 1000) / LATENCY_QUERIES
        latency.set(name, [...(latency.get(name) ?? []), us])
        trips.set(name, syncs / LATENCY_QUERIES)
      }
    }
    for (const [name] of options) {
      console.log(
        `   ${name.padEnd(54)} ${trips.get(name)!.toFixed(0)} round trip(s)  ${median(latency.get(name)!).toFixed(0).padStart(4)} µs/query`,
      )
    }
    const leftover = await client.query(`select current_setting('rowtenancy.tenant_id', true) as t`)
    console.log(
      `   setting on the connection afterwards: ${JSON.stringify(leftover.rows[0].t)} (empty: nothing carried over)`,
    )
    client.release()

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
