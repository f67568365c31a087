import type pg from 'pg'
import { runWithTenant } from '../context/index.js'
import { ConfigError, InvalidInputError } from '../errors/index.js'
import { withTenantClient } from '../pg/index.js'
import { boundedQueryable, DEFAULT_ACQUIRE_MS } from '../sql/acquire.js'
import { inTransaction, type Queryable } from '../sql/queryable.js'
import type { Tenant, TenantIdType, TenantStatus, TenantStore } from '../tenants/index.js'
import { type JobAuditOptions, jobAuditWriter } from './job-audit.js'
import { ledgerTable } from './run-ledger.js'

/**
 * Options of {@link forEachTenant}.
 *
 * @example
 * ```ts
 * const options: ForEachTenantOptions = {
 *   pool: runtimePool, store, audit,
 *   run: 'invoice-reminders-2026-11-29', reason: 'daily invoice reminders', concurrency: 8,
 * }
 * ```
 */
export interface ForEachTenantOptions {
  /** The pool tenant transactions run on (the runtime role, under RLS); the ledger lives in its database. */
  readonly pool: pg.Pool
  /** Lists the tenants. */
  readonly store: TenantStore
  /**
   * Records the run once in the audit log. Its pool (the owner's) also reads the ledger and
   * records failures, outside the tenants' transactions.
   */
  readonly audit: JobAuditOptions
  /** The run's stable name: a rerun with the same name skips tenants already done. */
  readonly run: string
  /** Why every tenant is visited; written to the audit log. */
  readonly reason: string
  /** Who started the run, for the audit log. */
  readonly actor?: string | undefined
  /** Tenants worked on at once; 4 by default. */
  readonly concurrency?: number | undefined
  /** Which tenants: `active` (default), `suspended`, or `all`. */
  readonly status?: TenantStatus | 'all' | undefined
  /**
   * `true` (default): `fn` gets a client in a transaction bound to the tenant,
   * and the ledger row is written in that same transaction, so the tenant's
   * database work and "done" commit together: a crash and a rerun never run a
   * finished tenant twice. `false`: `fn` runs outside the tenant's transaction
   * (e.g. it enqueues a job or calls an API) while the ledger holds the tenant's
   * "done" row locked in a transaction on the audit pool (one connection per
   * tenant in flight), committed right after `fn`: a concurrent call of the same
   * run waits for it instead of running the tenant again, and a crash between
   * `fn` and that commit can repeat that one tenant (at least once).
   */
  readonly atomic?: boolean | undefined
  /** The ledger table (see `installRunLedger`). */
  readonly ledgerTable?: string | undefined
  /**
   * Called after each tenant. When it throws, the run goes on (every tenant is
   * visited and recorded) and the call then rejects with its first error.
   */
  readonly onProgress?: ((progress: FanOutProgress) => void) | undefined
}

/**
 * Progress of a fan-out run, after each tenant.
 */
export interface FanOutProgress {
  readonly total: number
  /** Tenants finished in this call. */
  readonly done: number
  readonly failed: number
  /** Tenants a previous call of the same run already finished. */
  readonly skipped: number
  /** The tenant just finished (or failed). */
  readonly tenantId: string
}

/**
 * What a fan-out run did.
 */
export interface FanOutSummary {
  readonly run: string
  readonly total: number
  readonly done: number
  readonly skipped: number
  readonly failed: readonly { readonly tenantId: string; readonly error: string }[]
}

/**
 * What `fn` gets besides the tenant.
 *
 * @example
 * ```ts
 * await forEachTenant(async (tenant, { client }) => {
 *   await client!.query('update invoices set reminded = true where due < now()')
 * }, options)
 * ```
 */
export interface FanOutContext {
  readonly run: string
  /** In atomic mode: the tenant-bound client of the transaction that also records "done". */
  readonly client: pg.PoolClient | undefined
}

/**
 * Runs `fn` once for every tenant (active ones by default), each inside
 * `runWithTenant(tenant.id)`, at most `concurrency` at a time. The run is
 * audited once before any tenant is visited. It is resumable: a ledger keyed by
 * `run` records each finished tenant, so after a crash the same call skips them.
 * One tenant's failure does not stop the others; the summary lists failures
 * (and a rerun retries them).
 *
 * @example
 * ```ts
 * const summary = await forEachTenant(
 *   async (tenant, { client }) => { await client!.query('delete from sessions where expires < now()') },
 *   { pool: runtimePool, store, audit, run: `purge-${today}`, reason: 'purge expired sessions', concurrency: 8 },
 * )
 * summary.failed // [{ tenantId: '12', error: '...' }]
 * ```
 */
export async function forEachTenant(
  fn: (tenant: Tenant, context: FanOutContext) => Promise<unknown> | unknown,
  options: ForEachTenantOptions,
): Promise<FanOutSummary> {
  if (typeof fn !== 'function') {
    throw new InvalidInputError(
      `forEachTenant(fn, options): fn must be a function, not ${typeof fn}.`,
    )
  }
  const { pool, store, run, reason } = checkOptions(options)
  const audit = jobAuditWriter(options.audit)!
  const concurrency = options.concurrency ?? 4
  const atomic = options.atomic ?? true
  const table = ledgerTable(options.ledgerTable)
  const status = options.status ?? 'active'

  // The ledger's own statements outside a tenant's transaction go on the audit pool (the
  // owner's: row level security shows the runtime role only the bound tenant's rows), and
  // wait for a connection as long as withTenantClient does.
  const ledger = boundedQueryable(options.audit.db, DEFAULT_ACQUIRE_MS)
  const tenants = await store.list(status === 'all' ? {} : { status })
  await audit.record(
    { source: 'withoutTenant', reason, actor: options.actor, tenantId: undefined },
    `forEachTenant run ${JSON.stringify(run)} status ${status} tenants ${tenants.length} concurrency ${concurrency}`,
    { rowCount: tenants.length },
  )
  const finished = await ledger.query(
    `select tenant_id from ${table} where run = $1 and state = 'done'`,
    [run],
  )
  const done = new Set<string>(finished.rows.map((r) => r.tenant_id))
  const todo = tenants.filter((t) => !done.has(t.id))
  let ran = 0
  let skipped = tenants.length - todo.length
  const failed: { tenantId: string; error: string }[] = []

  const { claim, markFailed } = ledgerStatements(table)

  const visit = (tenant: Tenant) =>
    visitTenant(tenant, fn, { pool, ledger, idType: store.idType, run, atomic, claim })

  // onProgress's failure ends the call only once no tenant is running: work left running
  // behind a settled call would race a rerun of the same run
  let progressError: { err: unknown } | undefined
  let next = 0
  const worker = async () => {
    while (next < todo.length) {
      const tenant = todo[next++]!
      try {
        if ((await visit(tenant)) === 'ran') ran++
        else skipped++
      } catch (err) {
        const error = err instanceof Error ? err.message : String(err)
        failed.push({ tenantId: tenant.id, error })
        await ledger.query(markFailed, [run, tenant.id, error.slice(0, 2000)]).catch(() => {})
      }
      try {
        options.onProgress?.({
          total: tenants.length,
          done: ran,
          failed: failed.length,
          skipped,
          tenantId: tenant.id,
        })
      } catch (err) {
        progressError ??= { err }
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, todo.length) }, worker))
  if (progressError !== undefined) throw progressError.err
  return { run, total: tenants.length, done: ran, skipped, failed }
}

/** The ledger statements of a run: claim a tenant as done, record its failure. */
function ledgerStatements(table: string): { claim: string; markFailed: string } {
  const claim =
    `insert into ${table} (run, tenant_id, state) values ($1, $2, 'done') ` +
    `on conflict (run, tenant_id) do update set state = 'done', attempts = ${table}.attempts + 1, ` +
    `error = null, finished_at = now() where ${table}.state <> 'done' returning 1`
  const markFailed =
    `insert into ${table} (run, tenant_id, state, error) values ($1, $2, 'failed', $3) ` +
    `on conflict (run, tenant_id) do update set state = 'failed', attempts = ${table}.attempts + 1, ` +
    `error = $3, finished_at = now() where ${table}.state <> 'done'`
  return { claim, markFailed }
}

/**
 * Runs `fn` for one tenant and claims it in the ledger: atomic, claim and run in
 * one tenant-bound transaction ('skipped' when another run claimed it first);
 * otherwise run in the tenant's context, then claim.
 */
async function visitTenant(
  tenant: Tenant,
  fn: (tenant: Tenant, context: FanOutContext) => Promise<unknown> | unknown,
  o: {
    pool: pg.Pool
    ledger: Queryable
    idType: TenantIdType
    run: string
    atomic: boolean
    claim: string
  },
): Promise<'ran' | 'skipped'> {
  const { pool, run, claim } = o
  if (!o.atomic) {
    // The claim's row stays locked while fn runs, in a transaction of the ledger's own (fn gets
    // no client): a concurrent call of the same run waits on it, then sees "done" (or, if fn
    // failed, claims the tenant itself); a crash rolls the claim back.
    return inTransaction(o.ledger, async (tx) => {
      const claimed = await tx.query(claim, [run, tenant.id])
      if (claimed.rowCount === 0) return 'skipped' as const
      await runWithTenant(tenant.id, () => fn(tenant, { run, client: undefined }))
      return 'ran' as const
    })
  }
  return withTenantClient(
    pool,
    async (client) => {
      // Claim first: a concurrent run of the same name waits here, then sees "done".
      const claimed = await client.query(claim, [run, tenant.id])
      if (claimed.rowCount === 0) return 'skipped' as const
      await runWithTenant(tenant.id, () => fn(tenant, { run, client }))
      return 'ran' as const
    },
    { tenantId: tenant.id, tenantIdType: o.idType },
  )
}

/**
 * Enqueues one job per tenant through any adapter: `send` runs inside each
 * tenant's context (so the adapter seals that tenant), with the same audit,
 * ledger and resumability as {@link forEachTenant} (not atomic: a crash between
 * a send and its ledger row can send that one tenant's job again; give the job
 * a key such as the run's name where the queue dedupes: a job key is the tenant's own).
 *
 * @example
 * ```ts
 * await enqueueForEachTenant((tenant) => boss.send('monthly-statement', { month: '2026-11' }), {
 *   pool, store, audit, run: 'statements-2026-11', reason: 'monthly statements',
 * })
 * ```
 */
export function enqueueForEachTenant(
  send: (tenant: Tenant) => Promise<unknown>,
  options: Omit<ForEachTenantOptions, 'atomic'>,
): Promise<FanOutSummary> {
  if (typeof send !== 'function') {
    return Promise.reject(
      new InvalidInputError(
        `enqueueForEachTenant(send, options): send must be a function, not ${typeof send}.`,
      ),
    )
  }
  return forEachTenant((tenant) => send(tenant), { ...options, atomic: false })
}

function checkOptions(options: ForEachTenantOptions): ForEachTenantOptions {
  if (options === null || typeof options !== 'object') {
    throw new ConfigError('forEachTenant(fn, options) needs { pool, store, audit, run, reason }.')
  }
  for (const key of ['pool', 'store', 'audit'] as const) {
    if (!options[key]) throw new ConfigError(`forEachTenant needs ${key}.`)
  }
  if (typeof options.run !== 'string' || options.run.trim() === '' || options.run.length > 200) {
    throw new InvalidInputError(
      'forEachTenant needs run: a stable name of 1-200 characters (a rerun with the same name resumes).',
    )
  }
  if (typeof options.reason !== 'string' || options.reason.trim() === '') {
    throw new InvalidInputError(
      'forEachTenant needs a non-empty reason: it is written to the audit log.',
    )
  }
  const c = options.concurrency
  if (c !== undefined && (!Number.isSafeInteger(c) || c < 1 || c > 256)) {
    throw new InvalidInputError(`concurrency must be an integer from 1 to 256, not ${String(c)}.`)
  }
  if (options.atomic !== undefined && typeof options.atomic !== 'boolean') {
    throw new InvalidInputError(
      `atomic must be true or false, not ${JSON.stringify(options.atomic)}.`,
    )
  }
  if (options.onProgress !== undefined && typeof options.onProgress !== 'function') {
    throw new InvalidInputError(`onProgress must be a function, not ${typeof options.onProgress}.`)
  }
  if (options.actor !== undefined && typeof options.actor !== 'string') {
    throw new InvalidInputError(`actor must be a string, not ${typeof options.actor}.`)
  }
  const s = options.status
  if (s !== undefined && s !== 'active' && s !== 'suspended' && s !== 'all') {
    throw new InvalidInputError(
      `status must be active, suspended or all, not ${JSON.stringify(s)}.`,
    )
  }
  return { ...options, reason: options.reason.trim() }
}
