import { MigrationError } from '../../errors/index.js'
import { revokeAllButOwner } from '../../sql/privileges.js'
import type { ConnectableQueryable, Queryable } from '../../sql/queryable.js'
import { quoteIdent, quoteQualified } from '../../sql/quote.js'
import { securityInvoker } from '../../sql/reloptions.js'
import { SERVING_TABLE, servingDdl } from '../../tenants/serving.js'
import { copyTenant } from '../copy.js'
import { DEFERRED_INDEX_TABLE, unbuiltIndexes } from '../deferred-indexes.js'
import { chooseGuard } from '../guard.js'
import { ensureLedger, type LedgerEntry, readLedger } from '../ledger.js'
import {
  type MigrationPlan,
  type MigrationPlanOptions,
  planMigration,
  type TenantPlan,
} from '../plan.js'
import { adjustSequences } from '../sequences.js'
import { ensureTenantRow } from '../tenant-row.js'
import { CHANGELOG_TABLE, captureDdl } from './capture-sql.js'
import { catchUp, cutOver, installCapture, logged, recordLegacyChecksums } from './cutover.js'
import { assertNoDefaultPath, guardLegacySchema, inspectLegacySchema } from './legacy-rls.js'
import {
  LOCK_ATTEMPTS,
  lockBackoff,
  lockGaveUp,
  lockTables,
  TablesBusyError,
  withLockRetry,
} from './table-locks.js'

/**
 * The phase of one tenant in an online migration, as progress shows it.
 * @example `const p: OnlinePhase = 'catching-up'`
 */
export type OnlinePhase = 'copying' | 'catching-up' | 'fenced' | 'done' | 'failed'

/**
 * Progress events of {@link migrateOnline} (`--json`: one per line).
 *
 * @example
 * ```ts
 * await migrateOnline({ db, all: true, onEvent: (e) => e.type === 'online-tenant' && console.log(e.phase) })
 * ```
 */
export type OnlineEvent =
  | {
      readonly type: 'online-plan'
      readonly tenants: number
      readonly onSchema: number
      readonly blocked: number
    }
  | {
      readonly type: 'online-tenant'
      readonly tenantId: string
      readonly phase: OnlinePhase
      /** `done`: how long the fence was held, ms. */
      readonly fenceMs?: number
      /** `catching-up` / `done`: change log entries applied. */
      readonly applied?: number
      /** `done`: where the fence time went (see `CutoverResult.steps`). */
      readonly steps?: {
        readonly wait: number
        readonly apply: number
        readonly verify: number
        readonly flip: number
      }
      readonly error?: string
    }
  | {
      readonly type: 'online-finished'
      readonly ok: boolean
      readonly ms: number
      readonly fence: FenceStats
    }

/** The distribution of fence times of a run, ms. @example `{ count: 40, p50: 31, p95: 180, max: 420 }` */
export interface FenceStats {
  readonly count: number
  readonly p50: number
  readonly p95: number
  readonly max: number
}

/**
 * Options of {@link migrateOnline}.
 */
export interface OnlineOptions extends MigrationPlanOptions {
  /** An admin pool (owner of the shared tables and the legacy schemas); sized `jobs + 2`. */
  readonly db: ConnectableQueryable
  /** Tenants migrated at once; 1 by default. */
  readonly jobs?: number | undefined
  /**
   * The longest a request of a tenant waits at its fence before a retryable 503
   * (`TENANT_MIGRATING`), and the longest the cut-over waits for the tenant's
   * requests in flight; 5000 ms by default.
   */
  readonly fenceTimeoutMs?: number | undefined
  /** The runtime role: given usage and DML on the legacy schemas, so the app can serve tenants from them. */
  readonly grantTo?: string | undefined
  /** Install the serving map and place every tenant, then stop (deploy the app with `hybrid` next). */
  readonly prepareOnly?: boolean | undefined
  readonly onEvent?: ((event: OnlineEvent) => void) | undefined
}

/**
 * What happened to one tenant.
 */
export interface OnlineTenantReport {
  readonly tenantId: string
  readonly schema: string
  readonly status: 'migrated' | 'already-shared' | 'blocked' | 'failed' | 'prepared'
  readonly fenceMs?: number
  readonly error?: string
  /** `migrated`, but the cut-over's checksums were not recorded: rerun `--online` to record them. */
  readonly warning?: string
}

/**
 * The report of {@link migrateOnline}.
 */
export interface OnlineReport {
  readonly ok: boolean
  readonly tenants: readonly OnlineTenantReport[]
  readonly fence: FenceStats
  readonly ms: number
}

const MAX_FENCE_MS = 600_000
const CATCH_UP_ROUNDS = 8
/** Entries left in the change log below which the cut-over goes ahead. */
const CATCH_UP_ENOUGH = 500
const CUTOVER_TRIES = 3

/**
 * Migrates tenants while the app keeps serving them (`migrate-to-row-tenancy
 * --online`). First installs the serving map (`rowtenancy_serving`,
 * `rowtenancy_enter`), the change log and its capture function, creates each
 * tenant's `tenants` row and places it on its schema (a tenant the ledger has as
 * done is placed on the shared tables). Then, `jobs` tenants at a time: capture
 * triggers on the tenant's legacy tables, the usual verified copy, rounds of
 * catching up with the change log, and the cut-over under the tenant's write
 * fence (see `cutOver`). A rerun continues where a crash left off.
 *
 * @example
 * ```ts
 * const report = await migrateOnline({ db: pool, all: true, jobs: 2, fenceTimeoutMs: 3000, grantTo: 'app' })
 * report.fence // { count: 40, p50: 35, p95: 160, max: 300 }
 * ```
 */
export async function migrateOnline(options: OnlineOptions): Promise<OnlineReport> {
  const started = Date.now()
  const fenceTimeoutMs = options.fenceTimeoutMs ?? 5_000
  if (
    !Number.isSafeInteger(fenceTimeoutMs) ||
    fenceTimeoutMs < 1 ||
    fenceTimeoutMs > MAX_FENCE_MS
  ) {
    throw new MigrationError(
      `--fence-timeout must be a whole number of milliseconds from 1 to ${MAX_FENCE_MS}, not ${options.fenceTimeoutMs}.`,
    )
  }
  const jobs = options.jobs ?? 1
  if (!Number.isSafeInteger(jobs) || jobs < 1 || jobs > 64) {
    throw new MigrationError(`--jobs must be a whole number from 1 to 64, not ${options.jobs}.`)
  }
  const { plan, guard, placed } = await prepareOnline(options, fenceTimeoutMs)
  await refuseUnbuiltIndexes(options.db, plan.targetSchema)
  const blocked = plan.tenants.filter((t) => t.blocked)
  const todo = plan.tenants.filter((t) => !t.blocked && placed.get(t.tenant.id) === 'schema')
  emit(options, {
    type: 'online-plan',
    tenants: plan.tenants.length,
    onSchema: todo.length,
    blocked: blocked.length,
  })
  const reports = new Map<string, OnlineTenantReport>()
  for (const tp of plan.tenants) {
    const base = { tenantId: tp.tenant.id, schema: tp.tenant.schema }
    if (tp.blocked)
      reports.set(base.tenantId, { ...base, status: 'blocked', error: 'blocking drift' })
    else if (placed.get(base.tenantId) === 'shared') {
      // A run stopped between a cut-over and recording its checksums: record them now.
      if (!options.prepareOnly) await fillCutoverChecksums(options, plan, tp)
      reports.set(base.tenantId, { ...base, status: 'already-shared' })
    } else if (options.prepareOnly) reports.set(base.tenantId, { ...base, status: 'prepared' })
  }
  if (!options.prepareOnly) {
    const queue = [...todo]
    const worker = async () => {
      for (let tp = queue.shift(); tp; tp = queue.shift()) {
        reports.set(tp.tenant.id, await migrateTenant(options, plan, tp, guard, fenceTimeoutMs))
      }
    }
    await Promise.all(Array.from({ length: Math.min(jobs, Math.max(1, todo.length)) }, worker))
  }
  const tenants = plan.tenants.map((tp) => reports.get(tp.tenant.id)!)
  const fence = fenceStats(tenants.flatMap((t) => (t.fenceMs === undefined ? [] : [t.fenceMs])))
  const ok = tenants.every((t) => t.status !== 'failed' && t.status !== 'blocked')
  const ms = Date.now() - started
  emit(options, { type: 'online-finished', ok, ms, fence })
  return { ok, tenants, fence, ms }
}

/** p50 / p95 / max of fence times (nearest rank). @internal */
export function fenceStats(values: readonly number[]): FenceStats {
  const sorted = [...values].sort((a, b) => a - b)
  const rank = (p: number) =>
    sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!
  const round = (n: number) => Math.round(n * 10) / 10
  return {
    count: sorted.length,
    p50: round(rank(0.5)),
    p95: round(rank(0.95)),
    max: round(sorted[sorted.length - 1] ?? 0),
  }
}

function emit(options: OnlineOptions, event: OnlineEvent): void {
  try {
    options.onEvent?.(event)
  } catch {
    // a broken progress renderer must not break the migration
  }
}

/** The plan, the copy guard, and each tenant's placement after the serving map is installed. */
async function prepareOnline(
  options: OnlineOptions,
  fenceTimeoutMs: number,
): Promise<{
  plan: MigrationPlan
  guard: Awaited<ReturnType<typeof chooseGuard>>
  placed: Map<string, 'schema' | 'shared'>
}> {
  const admin = await options.db.connect()
  try {
    const plan = await planMigration(admin, options)
    if (plan.idStrategy !== 'composite') {
      throw new MigrationError(
        'An online migration keeps the legacy ids (idStrategy composite); migrate with remap offline.',
      )
    }
    if (options.grantTo !== undefined) await assertRole(admin, options.grantTo)
    await assertNoDefaultPath(
      admin,
      plan.tenants.map((tp) => tp.tenant.schema),
      options.grantTo,
    )
    const guard = await chooseGuard(admin, plan)
    await ensureLedger(admin, plan.targetSchema)
    const ledger = await readLedger(admin, plan.targetSchema)
    const tenants = plan.tenants.filter((tp) => !tp.blocked)
    // Refusals first, reading only: nothing is changed when one schema is refused.
    for (const tp of tenants) await inspectLegacySchema(admin, tp.tenant.schema, options.grantTo)
    await installServing(admin, plan, options.grantTo)
    // Each schema in a transaction of its own that locks its tables up front with a short
    // wait and retries: the app serving them is never held up long nor made a deadlock victim.
    // The tenant is placed in the same transaction as its tables are guarded: a tenant without
    // a serving row is served from the shared tables, so it never has one without its rows there
    // or its guard here.
    const prepared: string[] = []
    for (const tp of tenants) {
      const rerun = prepareRerun(tp, prepared, tenants.length)
      await withLockRetry(
        legacyWhat(tp),
        () =>
          onConnection(admin, async () => {
            await admin.query("select pg_advisory_xact_lock(hashtext('rowtenancy.online.install'))")
            // Raw SQL of the runtime role reads a legacy table only when entered for its schema.
            await guardLegacySchema(admin, tp.tenant.schema, options.grantTo)
            if (options.grantTo !== undefined)
              await grantSchema(admin, tp.tenant.schema, options.grantTo)
            await ensureTenantRow(admin, plan.tenantsSchema, plan.idType, tp.tenant)
            await admin.query(
              `insert into ${quoteQualified(plan.targetSchema, SERVING_TABLE)} (tenant_id, schema_name, placement, fence_ms)
               values ($1::${plan.idType}, $2, $3, $4) on conflict (tenant_id) do update set fence_ms = excluded.fence_ms`,
              [
                tp.tenant.id,
                tp.tenant.schema,
                initialPlacement(ledger.get(tp.tenant.id)),
                fenceTimeoutMs,
              ],
            )
          }),
        { rerun },
      )
      prepared.push(tp.tenant.schema)
    }
    // Tenants the app creates from now on get ids above the legacy ones.
    await adjustSequences(admin, plan.tenantsSchema, ['tenants'])
    const { rows } = await admin.query(
      `select tenant_id::text as id, placement from ${quoteQualified(plan.targetSchema, SERVING_TABLE)}`,
    )
    const placed = new Map(rows.map((r) => [r.id as string, r.placement as 'schema' | 'shared']))
    return { plan, guard, placed }
  } finally {
    admin.release()
  }
}

/**
 * The serving map, `rowtenancy_enter`, the change log and its capture function
 * (and reading the serving map for `grantTo`), one installer at a time. On a rerun, `create index if not exists` still takes
 * a share lock on the serving map and the change log (the app's capture
 * triggers write the log): taken up front with a short wait, retried.
 */
async function installServing(
  admin: Queryable,
  plan: MigrationPlan,
  grantTo: string | undefined,
): Promise<void> {
  const serving = quoteQualified(plan.targetSchema, SERVING_TABLE)
  const log = quoteQualified(plan.targetSchema, CHANGELOG_TABLE)
  await withLockRetry(`${serving} and ${log}`, () =>
    onConnection(admin, async () => {
      // One installer at a time (a second run waits here).
      await admin.query("select pg_advisory_xact_lock(hashtext('rowtenancy.online.install'))")
      const { rows } = await admin.query(
        'select t from unnest($1::text[]) t where pg_catalog.to_regclass(t) is not null',
        [[serving, log]],
      )
      await lockTables(
        admin,
        rows.map((r) => r.t as string),
        'share',
      )
      for (const s of servingDdl(plan.targetSchema, plan.idType)) await admin.query(s)
      for (const s of captureDdl(plan.targetSchema, plan.idType)) await admin.query(s)
      // Default privileges may have given the app role DML on them: the serving map decides
      // where a tenant's queries go, the change log what the cut-over copies. The app only
      // reads the serving map (also granted with grantTo); the capture trigger writes
      // the log as its owner.
      await revokeAllButOwner(admin, serving, { keepSelect: true })
      await revokeAllButOwner(admin, log)
      // a tenancy without adminPool reads the serving map on the runtime role
      if (grantTo !== undefined)
        await admin.query(`grant select on ${serving} to ${quoteIdent(grantTo)}`)
    }),
  )
}

/** `fn` in a transaction on this one connection (a checked-out client): committed, or rolled back. */
async function onConnection<T>(client: Queryable, fn: () => Promise<T>): Promise<T> {
  await client.query('begin')
  try {
    const out = await fn()
    await client.query('commit')
    return out
  } catch (err) {
    await client.query('rollback').catch(() => {})
    throw err
  }
}

function initialPlacement(entry: LedgerEntry | undefined): 'schema' | 'shared' {
  return entry?.state === 'done' || entry?.state === 'schema_dropped' ? 'shared' : 'schema'
}

async function assertRole(db: Queryable, role: string): Promise<void> {
  const { rows } = await db.query('select 1 from pg_roles where rolname = $1', [role])
  if (rows.length === 0) {
    throw new MigrationError(
      `--grant-to ${JSON.stringify(role)}: no such role. Name the app's runtime role (rowtenancy init --runtime-role).`,
    )
  }
}

/**
 * The runtime role's grants on a legacy schema: its tables (each under the legacy policy)
 * and sequences, and of its views only those with `security_invoker` (the policy then applies
 * to the tables below). A view that runs as its owner, a materialized view (rows stored
 * already) or a foreign table would show every tenant of the schema, bound or not: the role
 * keeps no privilege on them, and such an object (or a SECURITY DEFINER function) it still
 * reaches through PUBLIC is refused (MigrationError).
 */
async function grantSchema(db: Queryable, schema: string, role: string): Promise<void> {
  const s = quoteIdent(schema)
  const r = quoteIdent(role)
  await db.query(`grant usage on schema ${s} to ${r}`)
  await db.query(`grant select, insert, update, delete on all tables in schema ${s} to ${r}`)
  await db.query(`grant usage, select on all sequences in schema ${s} to ${r}`)
  const { rows } = await db.query(
    `select c.oid::regclass::text as name
       from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
      where n.nspname = $1
        and (c.relkind in ('m', 'f')
             or (c.relkind = 'v' and not ${securityInvoker('c')}))`,
    [schema],
  )
  for (const { name } of rows as { name: string }[])
    await db.query(`revoke all on ${name} from ${r}`)
  // What the role still reaches through PUBLIC: such a view, or a SECURITY DEFINER function
  // (any function is executable by PUBLIC unless revoked), runs as its owner, past the policy.
  const { rows: open } = await db.query(
    `select c.oid::regclass::text as name from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
      where n.nspname = $1
        -- a column grant (grant select (name) on ... to public) is a way in too
        and pg_catalog.has_any_column_privilege($2::text, c.oid, 'SELECT')
        and (c.relkind in ('m', 'f')
             or (c.relkind = 'v' and not ${securityInvoker('c')}))
     union all
     select p.oid::regprocedure::text from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
      where n.nspname = $1 and p.prosecdef and pg_catalog.has_function_privilege($2::text, p.oid, 'EXECUTE')
      order by 1`,
    [schema, role],
  )
  if (open.length > 0) {
    throw new MigrationError(
      `Legacy schema ${JSON.stringify(schema)}: ${role} would reach ${open.map((o) => o.name).join(', ')}, which run as their ` +
        "owner (a view without security_invoker, a materialized view or foreign table, a SECURITY DEFINER function) and show every tenant's rows " +
        'of that schema, whatever tenant the transaction is bound to. Revoke them from PUBLIC (revoke all on ... from public; ' +
        'revoke execute on function ... from public), or make the views security_invoker and the functions SECURITY INVOKER; ' +
        'the tenant stays on its schema.',
    )
  }
}

async function fillCutoverChecksums(
  options: OnlineOptions,
  plan: MigrationPlan,
  tp: TenantPlan,
): Promise<void> {
  const client = await options.db.connect()
  try {
    await recordLegacyChecksums(client, plan, tp)
  } finally {
    client.release()
  }
}

/** One tenant: capture, copy, catch up, cut over. A failure leaves it on its schema. */
async function migrateTenant(
  options: OnlineOptions,
  plan: MigrationPlan,
  tp: TenantPlan,
  guard: Awaited<ReturnType<typeof chooseGuard>>,
  fenceTimeoutMs: number,
): Promise<OnlineTenantReport> {
  const id = tp.tenant.id
  const base = { tenantId: id, schema: tp.tenant.schema }
  const client = await options.db.connect()
  let broken = false
  try {
    emit(options, { type: 'online-tenant', tenantId: id, phase: 'copying' })
    await withLockRetry(legacyWhat(tp), () => installCapture(client, plan, tp))
    // After the triggers commit: the copy's snapshot misses no logged write.
    await copyTenant(client, plan, tp, { guard, verify: true })
    emit(options, { type: 'online-tenant', tenantId: id, phase: 'catching-up' })
    for (let tries = 1, busy = 1; ; ) {
      let applied = 0
      for (let round = 0; round < CATCH_UP_ROUNDS; round++) {
        if ((await logged(client, plan, id)) <= CATCH_UP_ENOUGH) break
        applied += (await catchUp(client, plan, tp)).applied
      }
      // The last round also compares both sides in full, in its snapshot, outside the fence.
      const last = await catchUp(client, plan, tp, { verify: true })
      applied += last.applied
      try {
        const r = await cutOver(client, plan, tp, {
          fenceTimeoutMs,
          preverified: last.verified,
          onFenced: () => emit(options, { type: 'online-tenant', tenantId: id, phase: 'fenced' }),
        })
        emit(options, {
          type: 'online-tenant',
          tenantId: id,
          phase: 'done',
          fenceMs: Math.round(r.fenceMs * 10) / 10,
          applied: applied + r.applied,
          steps: roundSteps(r.steps),
        })
        // The cut-over is committed: a failure to fill in the checksums does not undo it
        // (drop-schemas refuses the schema until a rerun of --online records them).
        const recorded = await recordLegacyChecksums(client, plan, tp).then(
          () => undefined,
          (err: unknown) => (err instanceof Error ? err.message : String(err)),
        )
        return {
          ...base,
          status: 'migrated',
          fenceMs: r.fenceMs,
          ...(recorded === undefined ? {} : { warning: `checksums not recorded: ${recorded}` }),
        }
      } catch (err) {
        // Its legacy tables were busy (rolled back, the fence lifted): try again after a backoff.
        if (err instanceof TablesBusyError || isDeadlock(err)) {
          if (busy >= LOCK_ATTEMPTS) throw lockGaveUp(legacyWhat(tp), busy, err)
          await lockBackoff(busy++)
          continue
        }
        // The fence could not be taken in time (long requests in flight): try again.
        if (!isLockTimeout(err) || tries >= CUTOVER_TRIES) throw err
        tries++
      }
    }
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err)
    broken = isConnectionLoss(err)
    emit(options, { type: 'online-tenant', tenantId: id, phase: 'failed', error: message })
    return { ...base, status: 'failed', error: message }
  } finally {
    client.release(broken)
  }
}

function roundSteps<T extends Record<string, number>>(steps: T): T {
  return Object.fromEntries(
    Object.entries(steps).map(([k, v]) => [k, Math.round(v * 10) / 10]),
  ) as T
}

/** How `--prepare` stopped on `tp`'s tables: what is prepared, what is not, what to do. */
function prepareRerun(tp: TenantPlan, prepared: readonly string[], total: number): string {
  const after = total - prepared.length - 1
  const done =
    prepared.length === 0
      ? ''
      : ` ${prepared.length} of ${total} schemas are prepared already (${prepared
          .slice(0, 5)
          .map((x) => JSON.stringify(x))
          .join(', ')}${prepared.length > 5 ? ', ...' : ''}), their tenants served from them.`
  return (
    `Nothing of schema ${JSON.stringify(tp.tenant.schema)}${after > 0 ? ` nor of the ${after} after it` : ''} was changed.${done} ` +
    'Rerun `migrate-to-row-tenancy --online --prepare` (or the same --online command) when it has ended: it continues with the rest.'
  )
}

function legacyWhat(tp: TenantPlan): string {
  return `the legacy tables of schema ${JSON.stringify(tp.tenant.schema)}`
}

function isLockTimeout(err: unknown): boolean {
  return (err as { code?: string } | undefined)?.code === '55P03'
}

function isDeadlock(err: unknown): boolean {
  return (err as { code?: string } | undefined)?.code === '40P01'
}

function isConnectionLoss(err: unknown): boolean {
  const code = (err as { code?: string } | undefined)?.code
  return code === undefined
    ? !(err instanceof MigrationError)
    : code.startsWith('08') || code === '57P01'
}

/**
 * An offline `--all` run that stopped after dropping the shared tables' secondary
 * indexes for its copy leaves them recorded; an online run does not build them,
 * so it does not start on such tables.
 */
async function refuseUnbuiltIndexes(db: Queryable, schema: string): Promise<void> {
  const unbuilt = await unbuiltIndexes(db, schema)
  if (unbuilt.length === 0) return
  throw new MigrationError(
    `${unbuilt.length} secondary index(es) of the shared tables (${unbuilt
      .slice(0, 5)
      .map((i) => i.name)
      .join(', ')}) were dropped by an offline migration that stopped before building them: ` +
      'rerun the offline migration (`migrate-to-row-tenancy --all`) to build them, or create them ' +
      `from their definitions in ${schema}.${DEFERRED_INDEX_TABLE}, then run --online.`,
  )
}
