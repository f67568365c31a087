import pg from 'pg'
import { FINANCE_TABLES, type FinanceDB } from '../../examples/finance/db.js'
import { seededRandom } from '../../examples/finance/legacy/sizes.js'
import { runWithTenant } from '../../src/context/index.js'
import { runPipelined, type Statement } from '../../src/db/pipelined-query.js'
import { RLS_SETTING } from '../../src/schema/rls-policy.js'
import { quoteIdent } from '../../src/sql/quote.js'
import { createTenancy } from '../../src/tenancy/index.js'
import type { BenchTenant } from './build.js'
import type { LoadRun } from './results.js'
import { percentile } from './stats.js'

/**
 * Settings of {@link measureRequestPath}.
 *
 * @example
 * ```ts
 * const s: RequestSettings = { pool: 10, concurrency: 20, ms: 3000, readShare: 0.8, repetitions: 3, seed: 1 }
 * ```
 */
export interface RequestSettings {
  /** Connections per layout's pool. */
  readonly pool: number
  /** Requests in flight at once. */
  readonly concurrency: number
  /** How long one load run lasts. */
  readonly ms: number
  /** Share of point reads; the rest are small writes (one inserted transaction row). */
  readonly readShare: number
  readonly repetitions: number
  readonly seed: number
}

/** One request of the workload: which tenant, which account, read or write. @internal */
interface Request {
  readonly tenant: BenchTenant
  readonly account: number
  readonly write: boolean
}

/** A request handler of one layout. @internal */
type Handler = (request: Request) => Promise<unknown>

/** The same seeded stream of requests for both layouts. @internal */
function workload(tenants: readonly BenchTenant[], settings: RequestSettings, salt: number) {
  const random = seededRandom(settings.seed * 7919 + salt)
  return (): Request => {
    const tenant = tenants[Math.floor(random() * tenants.length)]!
    const account = 1 + Math.floor(random() * tenant.accounts)
    return { tenant, account, write: random() >= settings.readShare }
  }
}

/** Runs `concurrency` loops of `handler` for `ms`; returns the count and latencies. @internal */
async function load(
  handler: Handler,
  next: () => Request,
  settings: RequestSettings,
): Promise<LoadRun> {
  const latencies: number[] = []
  const started = performance.now()
  const deadline = started + settings.ms
  const loop = async () => {
    while (performance.now() < deadline) {
      const t0 = performance.now()
      await handler(next())
      latencies.push(performance.now() - t0)
    }
  }
  await Promise.all(Array.from({ length: settings.concurrency }, loop))
  const ms = performance.now() - started
  return {
    requests: latencies.length,
    ms,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
  }
}

/** The three request paths measured. @internal */
type Layout = 'row' | 'rowPlain' | 'schema'

/** How a plain-`pg` path binds a request and which SQL it runs. @internal */
interface PlainPath {
  bind(tenant: BenchTenant): Statement
  /** The tenant values that lead the parameters (none when the binding says it all). */
  lead(tenant: BenchTenant): unknown[]
  readonly read: string
  readonly write: string
}

/** A handler on plain `pg`: bind + query in one round trip, like the binding dialect. @internal */
function plainHandler(pool: pg.Pool, path: PlainPath, postedAt: Date): Handler {
  return async (r) => {
    const client = await pool.connect()
    try {
      const lead = path.lead(r.tenant)
      const main = r.write
        ? { text: path.write, values: [...lead, r.account, '12.34', postedAt, 'bench'] }
        : { text: path.read, values: [...lead, r.account] }
      const result = await runPipelined(client, [path.bind(r.tenant)], main)
      if (!r.write && result.rows.length !== 1) throw new Error('point read found no account')
      return result
    } finally {
      client.release()
    }
  }
}

const SCHEMA_PATH: PlainPath = {
  bind: (t) => ({
    text: "select set_config('search_path', $1, true)",
    values: [quoteIdent(t.schema)],
  }),
  lead: () => [],
  read: 'select id, name, currency, kind, is_closed from finance_account where id = $1',
  write:
    'insert into finance_transaction (account_id, amount, posted_at, description) values ($1, $2, $3, $4)',
}

const ROW_PLAIN_PATH: PlainPath = {
  bind: (t) => ({ text: `select set_config('${RLS_SETTING}', $1, true)`, values: [String(t.id)] }),
  lead: (t) => [String(t.id)],
  read: 'select id, name, currency, kind, is_closed from finance_account where tenant_id = $1 and id = $2',
  write:
    'insert into finance_transaction (tenant_id, account_id, amount, posted_at, description) values ($1, $2, $3, $4, $5)',
}

/**
 * The tenant-scoped request path, on the same seeded stream of requests (random
 * tenant, random account; `readShare` point reads of one account, the rest
 * insert one transaction row), every path as the same runtime role with a pool
 * of `settings.pool` of its own:
 * - `row`: shared tables through `tenancy.kysely()` inside `runWithTenant`: the
 *   TenantPlugin adds `tenant_id = $n` / stamps the insert, the binding dialect
 *   sends `set_config('rowtenancy.tenant_id', $1, true)` with the query (one
 *   round trip, one implicit transaction), RLS enforcing it;
 * - `schema`: plain `pg`, `set_config('search_path', '"tenant_x"', true)` sent
 *   with the query the same way (same pipelining, same transaction scope,
 *   unnamed statements on both sides, as the binding dialect uses);
 * - `rowPlain`: the shared tables and RLS binding on plain `pg`, no Kysely: the
 *   database's share of `row`, to tell it from the library's.
 * Each repetition runs all three (order rotating) after one short warm-up each.
 *
 * @example
 * ```ts
 * const { row, schema } = await measureRequestPath(runtimeUrl, ownerPool, tenants, settings)
 * ```
 */
export async function measureRequestPath(
  runtimeUrl: string,
  ownerPool: pg.Pool,
  tenants: readonly BenchTenant[],
  settings: RequestSettings,
): Promise<Record<Layout, LoadRun[]>> {
  const pools = {
    row: new pg.Pool({ connectionString: runtimeUrl, max: settings.pool }),
    rowPlain: new pg.Pool({ connectionString: runtimeUrl, max: settings.pool }),
    schema: new pg.Pool({ connectionString: runtimeUrl, max: settings.pool }),
  }
  const tenancy = createTenancy({
    pool: pools.row,
    adminPool: ownerPool,
    tables: FINANCE_TABLES,
    tenantIdType: 'bigint',
    audit: { table: false },
  })
  const db = tenancy.kysely<FinanceDB>()
  const postedAt = new Date('2026-01-15T12:00:00Z')
  const handlers: Record<Layout, Handler> = {
    row: (r) =>
      runWithTenant(String(r.tenant.id), () =>
        r.write
          ? db
              .insertInto('finance_transaction')
              .values({
                account_id: r.account,
                amount: '12.34',
                posted_at: postedAt,
                description: 'bench',
              })
              .execute()
          : db
              .selectFrom('finance_account')
              .select(['id', 'name', 'currency', 'kind', 'is_closed'])
              .where('id', '=', String(r.account))
              .executeTakeFirstOrThrow(),
      ),
    rowPlain: plainHandler(pools.rowPlain, ROW_PLAIN_PATH, postedAt),
    schema: plainHandler(pools.schema, SCHEMA_PATH, postedAt),
  }
  const layouts: Layout[] = ['row', 'schema', 'rowPlain']
  const out: Record<Layout, LoadRun[]> = { row: [], rowPlain: [], schema: [] }
  try {
    const warm = { ...settings, ms: Math.min(1000, settings.ms) }
    for (const layout of layouts) await load(handlers[layout], workload(tenants, settings, 0), warm)
    for (let rep = 0; rep < settings.repetitions; rep++) {
      for (let i = 0; i < layouts.length; i++) {
        const layout = layouts[(rep + i) % layouts.length]!
        const next = workload(tenants, settings, rep + 1)
        out[layout].push(await load(handlers[layout], next, settings))
      }
    }
  } finally {
    await Promise.all(Object.values(pools).map((p) => p.end()))
  }
  return out
}
