/**
 * Citus benchmark: tenant point-read throughput on the kit's cluster, in one run.
 *
 * - router: `tenancy.kysely()` (the plugin adds `tenant_id = $n`) + RLS, SET LOCAL
 *   binding: Citus sends each query to the one shard of the tenant;
 * - anchor: RLS alone, the same point read without the tenant predicate, through
 *   the same binding dialect: the policy does not route, so every shard is asked;
 * - scale: the plugin + RLS read on a single PostgreSQL (DATABASE_URL, else an
 *   embedded server) with the same table and rows.
 *
 * Reports ops/s (median of paired, order-alternating rounds), the router / RLS-alone
 * ratio, and the shard count.
 *
 *   npx tsx bench/citus.ts --quick      # 20,000 rows, 200 tenants
 *   CITUS_URL=postgres://postgres@127.0.0.1:9700/postgres npx tsx bench/citus.ts
 */
import { randomBytes } from 'node:crypto'
import { Kysely } from 'kysely'
import pg from 'pg'
import { distribute } from '../src/citus/index.js'
import { runWithTenant } from '../src/context/index.js'
import { TenantBindingDialect } from '../src/db/tenant-dialect.js'
import { createTenancy, type Tenancy } from '../src/entries/index.js'
import { enableRls } from '../src/schema/rls-apply.js'
import { grantRuntimeRole } from '../src/schema/roles.js'
import { installTenantTables } from '../src/tenants/index.js'
import { createCitusDatabase, dropCitusDatabase } from '../test/helpers/citus.js'
import { openScratchDatabase } from './scratch-database.js'

const quick = process.argv.includes('--quick')
const ROWS = quick ? 20_000 : 200_000
const TENANTS = quick ? 200 : 1_000
const CONCURRENCY = 8
const ROUND_MS = quick ? 1_000 : 2_500
const ROUNDS = quick ? 4 : 6

interface Tables {
  bench_accounts: { tenant_id: string; id: string; name: string }
}
type Run = (tenant: number, next: () => number) => Promise<unknown>

/** Sets up tenants + bench_accounts (RLS forced) + a runtime role on `url`; returns the runtime URL. */
async function setup(url: string, citus: boolean): Promise<{ runtimeUrl: string; shards: number }> {
  const owner = new pg.Pool({ connectionString: url, max: 2 })
  try {
    await installTenantTables(owner, { idType: 'bigint' })
    await owner.query(
      `insert into tenants (id, slug, name) select g, 't' || g, 'T' || g from generate_series(1, ${TENANTS}) g`,
    )
    await owner.query(`create table bench_accounts (
      tenant_id bigint not null references tenants (id), id bigint not null, name text not null,
      primary key (tenant_id, id))`)
    await owner.query(
      `insert into bench_accounts select (g % ${TENANTS}) + 1, g, md5(g::text) from generate_series(1, ${ROWS}) g`,
    )
    await enableRls(owner, [{ name: 'bench_accounts' }])
    let shards = 1
    if (citus) {
      await distribute(owner)
      const r = await owner.query(
        `select count(*)::int as n from pg_dist_shard where logicalrelid = 'bench_accounts'::regclass`,
      )
      shards = r.rows[0].n
    }
    await owner.query('analyze bench_accounts')
    const role = `rt_bench_citus_${randomBytes(4).toString('hex')}`
    const password = randomBytes(8).toString('hex')
    await grantRuntimeRole(owner, { role })
    await owner.query(`alter role "${role}" login password '${password}'`)
    const runtime = new URL(url)
    runtime.username = role
    runtime.password = password
    return { runtimeUrl: runtime.toString(), shards }
  } finally {
    await owner.end()
  }
}

async function throughput(run: Run): Promise<number> {
  const deadline = performance.now() + ROUND_MS
  let ops = 0
  await Promise.all(
    Array.from({ length: CONCURRENCY }, (_, w) => {
      const tenant = 1 + ((w * 37) % TENANTS)
      let k = w
      const next = () => {
        k = (k + 7919) % Math.floor(ROWS / TENANTS)
        return tenant - 1 + Math.max(1, k) * TENANTS
      }
      return runWithTenant(String(tenant), async () => {
        while (performance.now() < deadline) {
          await run(tenant, next)
          ops++
        }
      })
    }),
  )
  return (ops * 1000) / ROUND_MS
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const fmt = (n: number) => Math.round(n).toLocaleString('en-US')

async function main() {
  const citusAdmin = process.env.CITUS_URL ?? 'postgres://postgres@127.0.0.1:9700/postgres'
  const name = `rt_bench_citus_${randomBytes(4).toString('hex')}`
  const pools: pg.Pool[] = []
  const tenancies: Tenancy[] = []
  const scratch = await openScratchDatabase('rt_bench_citus_pg')
  let created = false
  try {
    console.log(
      `rowtenancy Citus bench: ${fmt(ROWS)} rows, ${TENANTS} tenants, ${CONCURRENCY} workers${quick ? ' (quick)' : ''}`,
    )
    await createCitusDatabase(citusAdmin, name)
    created = true
    const coordinator = new URL(citusAdmin)
    coordinator.pathname = `/${name}`
    const onCitus = await setup(coordinator.toString(), true)
    const onPg = await setup(scratch.url, false)
    const workers = await (async () => {
      const c = new pg.Client({ connectionString: citusAdmin })
      await c.connect()
      try {
        return (await c.query(`select count(*)::int as n from pg_dist_node where groupid <> 0`))
          .rows[0].n
      } finally {
        await c.end()
      }
    })()
    const pool = (url: string) => {
      const p = new pg.Pool({ connectionString: url, max: CONCURRENCY })
      p.on('error', () => {})
      pools.push(p)
      return p
    }
    const citusPool = pool(onCitus.runtimeUrl)
    const scoped = (p: pg.Pool) => {
      const t = createTenancy({ pool: p, tables: ['bench_accounts'], audit: { table: false } })
      tenancies.push(t)
      return t.kysely<Tables>()
    }
    const router = scoped(citusPool)
    const rlsAlone = new Kysely<Tables>({ dialect: new TenantBindingDialect({ pool: citusPool }) })
    const single = scoped(pool(onPg.runtimeUrl))
    const read =
      (db: Kysely<Tables>): Run =>
      (_tenant, next) =>
        db
          .selectFrom('bench_accounts')
          .select(['id', 'name'])
          .where('id', '=', String(next()))
          .executeTakeFirstOrThrow()
    const runs = { router: read(router), rlsAlone: read(rlsAlone), single: read(single) }
    for (const r of Object.values(runs)) await throughput(r) // warm-up: connections, plans, role checks
    const results = { router: [] as number[], rlsAlone: [] as number[], single: [] as number[] }
    const ratios: number[] = []
    for (let i = 0; i < ROUNDS; i++) {
      const order =
        i % 2 === 0 ? (['router', 'rlsAlone'] as const) : (['rlsAlone', 'router'] as const)
      const got: Record<string, number> = {}
      for (const k of order) got[k] = await throughput(runs[k])
      results.router.push(got.router!)
      results.rlsAlone.push(got.rlsAlone!)
      ratios.push(got.router! / got.rlsAlone!)
      results.single.push(await throughput(runs.single))
    }
    const r = median(ratios)
    console.log(
      `cluster: 1 coordinator + ${workers} workers, bench_accounts in ${onCitus.shards} shards`,
    )
    console.log(
      `router   (plugin + RLS, Citus asks 1 shard)        ${fmt(median(results.router)).padStart(8)} ops/s`,
    )
    console.log(
      `RLS alone (no tenant predicate: all ${onCitus.shards} shards)   ${fmt(median(results.rlsAlone)).padStart(8)} ops/s  <- anchor`,
    )
    console.log(
      `single PostgreSQL (plugin + RLS, for scale)      ${fmt(median(results.single)).padStart(8)} ops/s`,
    )
    console.log(
      `router / RLS alone: ${r.toFixed(1)}x (median of ${ROUNDS} paired rounds; spread ${Math.min(...ratios).toFixed(1)}-${Math.max(...ratios).toFixed(1)}x)`,
    )
    console.log(
      `router / single PostgreSQL: ${(median(results.router) / median(results.single)).toFixed(2)}x (one machine runs all 3 nodes here: no scale-out gain to expect)`,
    )
  } finally {
    for (const t of tenancies) await t.destroy().catch(() => {})
    for (const p of pools) await p.end().catch(() => {})
    if (created) await dropCitusDatabase(citusAdmin, name).catch(() => {})
    await scratch.close()
  }
}

await main()
