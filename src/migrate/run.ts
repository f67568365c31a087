import { describeValue } from '../errors/describe-value.js'
import { MigrationError } from '../errors/index.js'
import { DEFAULTS } from '../sql/defaults.js'
import { checkOptionTypes } from '../sql/option-types.js'
import { type ConnectableQueryable, type Queryable, sharedConnections } from '../sql/queryable.js'
import { quoteQualified } from '../sql/quote.js'
import { assertCitusCoordinator, checkCitusTarget } from './citus-target.js'
import { type CopyResult, copyTenant, flushCommits } from './copy.js'
import { deferIndexes, rebuildDeferredIndexes } from './deferred-indexes.js'
import { emit, type MigrationListener } from './events.js'
import { type CopyGuard, guardFor, mayReplicate } from './guard.js'
import { ensureLedger, type LedgerEntry, openLedger, readLedger, recordFailure } from './ledger.js'
import {
  type MigrationPlan,
  type MigrationPlanOptions,
  planMigration,
  type TenantPlan,
} from './plan.js'
import type { MigrationReport, TenantReport } from './report.js'
import {
  adjustSequences,
  followTenantSequences,
  moveSequencesOf,
  readSequenceColumns,
  type SequenceAdjustment,
  type SequenceColumn,
} from './sequences.js'

/**
 * Options of {@link migrate}.
 */
export interface MigrateOptions extends MigrationPlanOptions {
  /** A pool (or anything that hands out connections); sized at least `jobs + 1`. */
  readonly db: ConnectableQueryable
  /** Report the plan and drift; write nothing at all. */
  readonly dryRun?: boolean
  /** Tenants copied at once, each on its own connection; 1 by default. */
  readonly jobs?: number
  /** Verify each tenant before marking it done; true by default. */
  readonly verify?: boolean
  /**
   * For an `all` run into empty shared tables: drop their secondary indexes (plain,
   * non-unique ones) before the copy and build them once after it, instead of
   * maintaining them row by row; true by default. Their definitions are recorded
   * first, so a run that stops midway leaves them for the next run to build.
   */
  readonly deferIndexes?: boolean
  /** Refuse the whole run when any tenant has blocking drift, and stop at the first failure. */
  readonly strict?: boolean
  readonly onEvent?: MigrationListener
}

function tenantState(entry: LedgerEntry | undefined, tp: TenantPlan): 'done' | 'todo' {
  if (!entry || entry.state === 'rolled_back' || entry.state === 'pending') return 'todo'
  if (entry.state === 'done' || entry.state === 'schema_dropped') return 'done'
  return tp.tables.every((t) => entry.tables[t.name] !== undefined) ? 'done' : 'todo'
}

/**
 * Moves tenants from their schemas into the shared tables. Plans (discovery,
 * drift, FK order), creates the ledger, then migrates each tenant in its own
 * transaction, `jobs` at a time; tenants with blocking drift are refused and
 * reported, the rest go ahead. Finished tenants (per the ledger) are skipped, so
 * a rerun after a crash picks up where it stopped. Finally moves the shared
 * sequences above the copied ids. With `dryRun`, writes nothing and reports the plan;
 * a run with no tenant to copy and nothing copied before writes nothing either.
 *
 * @example
 * ```ts
 * import { migrate, formatReport } from 'rowtenancy/migrate'
 * const report = await migrate({ db: pool, all: true, source: { legacyTenantsTable: 'public.customers_client' } })
 * for (const line of formatReport(report)) console.log(line)
 * ```
 */
export async function migrate(options: MigrateOptions): Promise<MigrationReport> {
  const started = Date.now()
  checkOptionTypes(
    'migrate',
    options,
    {
      db: 'pool',
      dryRun: 'boolean',
      verify: 'boolean',
      deferIndexes: 'boolean',
      strict: 'boolean',
      all: 'boolean',
      tenantIds: 'list',
      models: 'list',
    },
    ['db'],
  )
  const jobs = jobCount(options.jobs)
  const dryRun = options.dryRun ?? false
  const prepared = await prepare(options, dryRun)
  try {
    return await migratePrepared(options, prepared, { started, jobs, dryRun })
  } finally {
    // A run with nothing to copy leaves no ledger behind.
    await prepared.ledgerCreation?.abandon().catch(() => {})
  }
}

async function migratePrepared(
  options: MigrateOptions,
  prepared: Prepared,
  { started, jobs, dryRun }: { started: number; jobs: number; dryRun: boolean },
): Promise<MigrationReport> {
  const verify = options.verify ?? true
  const { plan, guard, guardProblem, citusWarnings, ledger, citus } = prepared
  const warnings = [...plan.warnings, ...citusWarnings, ...(guardProblem ? [guardProblem] : [])]
  const { reports, todo } = triage(plan, ledger)
  emit(options.onEvent, {
    type: 'plan',
    tenants: plan.tenants.length,
    toCopy: todo.length,
    rows: todo.reduce((n, t) => n + t.estimatedRows, 0),
    dryRun,
  })
  let aborted: string | undefined
  let ahead: Promise<readonly SequenceColumn[]> | undefined
  const blocked = plan.tenants.filter((t) => t.blocked)
  const refused = options.strict && blocked.length > 0
  if (refused) {
    aborted = `\`strict\`: ${blocked.length} tenant(s) have blocking drift (${blocked.map((t) => t.tenant.id).join(', ')}); nothing was migrated.`
    for (const tp of todo) reports.set(tp.tenant.id, { ...pending(tp), status: 'not-run' })
  } else if (dryRun) {
    for (const [id, r] of await countRows(options.db, todo)) reports.set(id, r)
  } else if (todo.length > 0) {
    // The shared sequences' columns and state, read on one connection while the other commits
    // the ledger's creation and sets the indexes aside. The copies wait for both: they then
    // take these two connections, where a third backend would pay its own first catalog reads.
    const shared = readSharedSequences(options, plan)
    shared.catch(() => {})
    ahead = shared
    // Only now the ledger's creation commits: a run with nothing to copy (every tenant refused
    // or done) creates no ledger table.
    if (prepared.ledgerCreation) await prepared.ledgerCreation.commit()
    else
      await withClient(options.db, (c) =>
        ensureLedger(c, plan.targetSchema, { idMap: plan.idStrategy === 'remap' }),
      )
    const settings = { guard: guard!, verify, jobs, citus, ledger }
    const run = await deferIndexesOfRun(options, plan, citus)
      // Settled, not succeeded: a failure of that read is reported where the sequences move.
      .then(() =>
        shared.then(
          () => {},
          () => {},
        ),
      )
      .then(() => runCopies(options, plan, todo, settings))
      .catch(async (err) => {
        // The indexes come back even when the copy phase breaks (else the next run builds them).
        await rebuildDeferredIndexes(options.db, plan.targetSchema, jobs).catch(() => {})
        throw err
      })
    for (const [id, r] of run.reports) reports.set(id, r)
    warnings.push(...run.warnings)
    if (run.strictStop) aborted = 'stopped at the first failure (`strict`)'
  }
  // Copies commit without waiting for the WAL flush (also an earlier, killed run's): durable
  // from here on, before anything is reported. Sequences move only when this run copies
  // something or an earlier one did (a rerun after a crash between the last tenant's commit
  // and this step); a run that refuses every tenant of a fresh target changes nothing. Both
  // at once, and before the index builds: a build that fails must not leave the app's next
  // ids colliding with copied ones.
  const sequences = dryRun
    ? []
    : await flushAndMoveSequences(
        options,
        plan,
        !refused && (todo.length > 0 || copiedBefore(ledger))
          ? (ahead ?? readSharedSequences(options, plan))
          : undefined,
      )
  // Also after a run that stopped between its copy and this step: its indexes are recorded.
  const builtIndexes = dryRun
    ? []
    : await rebuildDeferredIndexes(options.db, plan.targetSchema, jobs)
  if (builtIndexes.length > 0)
    emit(options.onEvent, { type: 'indexes-built', indexes: builtIndexes.map((i) => i.name) })
  const tenants = plan.tenants.map((tp) => reports.get(tp.tenant.id) ?? pending(tp))
  const totals = totalsOf(tenants)
  const ok = aborted === undefined && totals.failed === 0 && totals.blocked === 0 && !guardProblem
  const report: MigrationReport = {
    ok,
    dryRun,
    idStrategy: plan.idStrategy,
    guard,
    verify: verify && !dryRun,
    tenants,
    totals,
    sequences,
    builtIndexes: builtIndexes.map((i) => i.name),
    warnings,
    ...(aborted ? { aborted } : {}),
    ms: Date.now() - started,
  }
  emit(options.onEvent, { type: 'finished', ok, ms: report.ms })
  return report
}

function totalsOf(tenants: readonly TenantReport[]): MigrationReport['totals'] {
  const count = (s: TenantReport['status']) => tenants.filter((t) => t.status === s).length
  return {
    tenants: tenants.length,
    migrated: count('migrated') + count('planned'),
    skipped: count('skipped'),
    blocked: count('blocked'),
    failed: count('failed') + count('not-run'),
    rows: tenants.reduce((n, t) => n + t.rows, 0),
  }
}

function jobCount(requested: unknown): number {
  if (requested === undefined) return 1
  // -1 or 1.5 used to be rounded into range silently
  if (
    typeof requested !== 'number' ||
    !Number.isInteger(requested) ||
    requested < 1 ||
    requested > 64
  ) {
    throw new MigrationError(
      `\`jobs\` must be a whole number between 1 and 64, not ${describeValue(requested)}.`,
    )
  }
  return requested
}

/** What a run reads before it copies anything. */
interface Prepared {
  readonly plan: MigrationPlan
  readonly guard: CopyGuard | null
  readonly guardProblem: string | undefined
  readonly citusWarnings: string[]
  readonly ledger: Map<string, LedgerEntry>
  /** The database is a Citus coordinator. */
  readonly citus: boolean
  readonly ledgerCreation: LedgerCreation | undefined
}

/**
 * Plans on one connection while one more asks whether the role may quiet the triggers, reads
 * the ledger and starts its creation, then takes a share of the plan's reads; then chooses
 * the copy guard and checks a Citus target. No third backend is started for the plan: each
 * pays its own first catalog reads, which cost more than the reads themselves. The copy jobs
 * then take these two connections.
 * A dry run reports a guard or Citus problem instead of throwing it.
 */
async function prepare(options: MigrateOptions, dryRun: boolean): Promise<Prepared> {
  // First and alone: a worker is refused before anything else, and the first backend of a new
  // database builds the relation cache file that the ones started next read.
  const citus = await assertCitusCoordinator(options.db)
  const targetSchema = options.targetSchema ?? DEFAULTS.schema
  const early = readEarly(options, targetSchema, dryRun)
  // Awaited below in every case: a failed plan does not leave it unhandled, nor the ledger's
  // transaction open.
  early.catch(() => {})
  // The plan's reads go to the connection the early reads used as well, once they are done.
  const lent = early.then(
    (e) => e.lend?.client,
    () => undefined,
  )
  const plan = await withClient(options.db, (c) =>
    planMigration(sharedConnections(c, lent), options),
  ).catch(async (err) => {
    await early
      .then((e) => {
        e.lend?.done()
        return e.ledgerCreation?.abandon()
      })
      .catch(() => {})
    throw err
  })
  const { replica, ledger, ledgerCreation, lend } = await early
  lend?.done()
  try {
    return { ...(await decide(options, dryRun, plan, citus, replica)), ledger, ledgerCreation }
  } catch (err) {
    await ledgerCreation?.abandon().catch(() => {})
    throw err
  }
}

/** The copy guard and the Citus checks once the plan is read; a dry run reports a problem. */
async function decide(
  options: MigrateOptions,
  dryRun: boolean,
  plan: MigrationPlan,
  citus: boolean,
  replica: boolean | Error,
): Promise<Omit<Prepared, 'ledger' | 'ledgerCreation'>> {
  let guardProblem: string | undefined
  const problem = (err: unknown) => {
    if (!dryRun) throw err
    guardProblem = `A real run would stop: ${err instanceof Error ? err.message : String(err)}`
  }
  let guard: CopyGuard | null = null
  try {
    if (replica instanceof Error) throw replica
    guard = guardFor(plan, replica)
  } catch (err) {
    problem(err)
  }
  const citusWarnings = citus
    ? await checkCitusTarget(options.db, plan).catch((err) => {
        problem(err)
        return [] as string[]
      })
    : []
  return { plan, guard, guardProblem, citusWarnings, citus }
}

/** The ledger's creation, left open by {@link readEarly}: committed once there is a tenant to copy. */
interface LedgerCreation {
  commit(): Promise<void>
  /** Rolls back unless committed; releases the connection. Safe to call twice. */
  abandon(): Promise<void>
}

/**
 * On a connection of its own while the plan reads the catalog: whether the role may quiet
 * the triggers, the ledger, then (not in a dry run) the ledger's creation when missing, in a
 * transaction left open for the run to commit or roll back.
 */
async function readEarly(
  options: MigrateOptions,
  targetSchema: string,
  dryRun: boolean,
): Promise<{
  replica: boolean | Error
  ledger: Map<string, LedgerEntry>
  ledgerCreation: LedgerCreation | undefined
  /** The connection, lent to the plan's reads; `done` once they are. */
  lend: { client: Queryable; done(): void } | undefined
}> {
  const client = await options.db.connect()
  let open = false
  try {
    const replica = await mayReplicate(client).catch((err: unknown) => err as Error)
    const ledger = await readLedger(client, targetSchema)
    // Held through the plan only where the plan has a connection of its own: the pool has
    // more than one, and nobody waits for one (the plan asked before this point; a caller
    // may hold the others). Held to create the ledger (a table no one else sees until the
    // commit; not with `remap`, whose id map may be altered, which the plan's reads would
    // wait for), and lent to the plan's reads.
    if (poolSize(options.db) < 2 || poolWaiters(options.db) > 0) {
      client.release()
      return { replica, ledger, ledgerCreation: undefined, lend: undefined }
    }
    if (dryRun || options.idStrategy === 'remap') {
      return {
        replica,
        ledger,
        ledgerCreation: undefined,
        lend: { client, done: () => client.release() },
      }
    }
    open = true
    await openLedger(client, targetSchema, {})
    let done = false
    const finish = async (sql: string) => {
      if (done) return
      done = true
      try {
        await client.query(sql)
      } finally {
        client.release()
      }
    }
    return {
      replica,
      ledger,
      ledgerCreation: { commit: () => finish('commit'), abandon: () => finish('rollback') },
      // Read-only catalog reads in that transaction: its new table is one they leave out.
      lend: { client, done: () => {} },
    }
  } catch (err) {
    if (open) await client.query('rollback').catch(() => {})
    client.release()
    throw err
  }
}

/** Reports for blocked and finished tenants; the rest are to copy. */
function triage(
  plan: MigrationPlan,
  ledger: ReadonlyMap<string, LedgerEntry>,
): { reports: Map<string, TenantReport>; todo: TenantPlan[] } {
  const reports = new Map<string, TenantReport>()
  const todo: TenantPlan[] = []
  for (const tp of plan.tenants) {
    const base = {
      tenantId: tp.tenant.id,
      schema: tp.tenant.schema,
      tables: [],
      rows: 0,
      ms: 0,
      drift: tp.drift,
    }
    if (tp.blocked) {
      reports.set(tp.tenant.id, { ...base, status: 'blocked', error: 'blocking drift; see drift' })
    } else if (tenantState(ledger.get(tp.tenant.id), tp) === 'done') {
      reports.set(tp.tenant.id, { ...base, status: 'skipped' })
    } else {
      todo.push(tp)
    }
  }
  return { reports, todo }
}

/**
 * Drops the secondary indexes of the shared tables before an `all` run copies into them,
 * when every one of them is empty (not on Citus, not with `deferIndexes: false`).
 */
async function deferIndexesOfRun(
  options: MigrateOptions,
  plan: MigrationPlan,
  citus: boolean,
): Promise<void> {
  const everyTenant = (options.tenantIds?.length ?? 0) === 0 && (options.models?.length ?? 0) === 0
  if (options.deferIndexes === false || citus || !everyTenant) return
  const client = await options.db.connect()
  try {
    const dropped = await deferIndexes(client, plan.targetSchema, plan.tables, plan.tenantColumn)
    if (dropped.length > 0)
      emit(options.onEvent, { type: 'indexes-deferred', indexes: dropped.map((i) => i.name) })
  } finally {
    client.release()
  }
}

/** The shared tables and the tenants table share a schema: their sequences are read and moved together. */
function tenantsWithShared(plan: MigrationPlan): boolean {
  return plan.tenantsSchema === plan.targetSchema && !plan.tables.includes('tenants')
}

/** The first step of moving the shared tables' sequences (see {@link readSequenceColumns}). */
function readSharedSequences(
  options: MigrateOptions,
  plan: MigrationPlan,
): Promise<readonly SequenceColumn[]> {
  const tables = tenantsWithShared(plan) ? [...plan.tables, 'tenants'] : plan.tables
  return readSequenceColumns(options.db, plan.targetSchema, tables, {
    looseScan: (table) => worthALooseScan(plan, table),
  })
}

/**
 * Makes the copies durable ({@link flushCommits}) and moves the sequences (when `shared`,
 * the shared tables' sequence columns, is given) on two connections, those the copies
 * warmed: one flushes and then follows the tenants' other sequences, the other moves the
 * shared tables' sequences and then the tenants table's. A third at once would start a
 * backend whose first catalog reads cost more than the statement.
 */
async function flushAndMoveSequences(
  options: MigrateOptions,
  plan: MigrationPlan,
  shared: Promise<readonly SequenceColumn[]> | undefined,
): Promise<SequenceAdjustment[]> {
  const together = tenantsWithShared(plan)
  const [followed, [adjusted, apart]] = await Promise.all([
    withClient(options.db, async (c) => {
      await flushCommits(c)
      if (!shared) return []
      return followTenantSequences(
        c,
        plan.targetSchema,
        plan.tables,
        plan.tenants.map((t) => t.tenant.schema),
      )
    }),
    shared
      ? withClient(options.db, async (c) => {
          const moved = await moveSequencesOf(c, plan.targetSchema, await shared, {
            looseScan: (table) => worthALooseScan(plan, table),
          })
          return [
            moved,
            together ? [] : await adjustSequences(c, plan.tenantsSchema, ['tenants']),
          ] as const
        })
      : ([[], []] as const),
  ])
  if (!shared) return []
  const isTenants = (a: SequenceAdjustment) => together && a.table === 'tenants'
  const sequences = [
    ...adjusted.filter((a) => !isTenants(a)),
    ...followed,
    ...adjusted.filter(isTenants),
    ...apart,
  ]
  emit(options.onEvent, { type: 'sequences', adjusted: sequences.length })
  return sequences
}

/**
 * Whether a shared table is large enough that its furthest id is found faster by a loose
 * index scan (a few ms to plan on a new backend, then two index descents per tenant, some
 * 20-50 µs each) than by a scan (about 1 µs per row, hint bits set on fresh rows): from the
 * plan's row estimates of the table in every tenant and in the shared table.
 */
function worthALooseScan(plan: MigrationPlan, table: string): boolean {
  let rows = plan.targets.get(table)?.estimatedRows ?? 0
  for (const tp of plan.tenants)
    rows += tp.tables.find((t) => t.name === table)?.source.estimatedRows ?? 0
  return rows >= LOOSE_SCAN_ROWS + 100 * plan.tenants.length
}

/** Below this many rows (plus 100 per tenant) a shared table's furthest id is found by a scan. */
const LOOSE_SCAN_ROWS = 20_000

/** Whether the ledger holds rows of a tenant that a run copied. */
function copiedBefore(ledger: ReadonlyMap<string, LedgerEntry>): boolean {
  return [...ledger.values()].some((e) => e.state !== 'pending' && e.state !== 'rolled_back')
}

function pending(tp: TenantPlan): TenantReport {
  return {
    tenantId: tp.tenant.id,
    schema: tp.tenant.schema,
    status: 'planned',
    tables: [],
    rows: 0,
    ms: 0,
    drift: tp.drift,
  }
}

/** Dry run: exact source row counts, in a read-only transaction. */
async function countRows(
  db: ConnectableQueryable,
  todo: TenantPlan[],
): Promise<Map<string, TenantReport>> {
  const reports = new Map<string, TenantReport>()
  const client = await db.connect()
  try {
    await client.query('begin read only')
    for (const tp of todo) {
      const tables = []
      for (const t of tp.tables) {
        const only = t.source.partitioned ? '' : 'only '
        const { rows } = await client.query(
          `select count(*)::int8 as n from ${only}${quoteQualified(tp.tenant.schema, t.name)}`,
        )
        tables.push({ table: t.name, rows: Number(rows[0].n), checksum: 'skipped' as const })
      }
      reports.set(tp.tenant.id, {
        ...pending(tp),
        tables,
        rows: tables.reduce((n, t) => n + t.rows, 0),
      })
    }
  } finally {
    await client.query('rollback').catch(() => {})
    client.release()
  }
  return reports
}

interface CopySettings {
  readonly guard: CopyGuard
  readonly verify: boolean
  /** The ledger as the run found it. */
  readonly ledger: ReadonlyMap<string, LedgerEntry>
  readonly jobs: number
  readonly citus: boolean
}

/** What the copy phase produced: a report per tenant it took, and the copy warnings. */
interface CopiesResult {
  readonly reports: Map<string, TenantReport>
  readonly warnings: string[]
  /** `strict` stopped the run at a failure. */
  readonly strictStop: boolean
}

/** The worker loop: `jobs` tenants at a time, each on its own connection (the ledger exists). */
async function runCopies(
  options: MigrateOptions,
  plan: MigrationPlan,
  todo: TenantPlan[],
  settings: CopySettings,
): Promise<CopiesResult> {
  const reports = new Map<string, TenantReport>()
  const warnings: string[] = []
  const queue = [...todo]
  let strictStop = false
  const worker = async () => {
    while (!strictStop) {
      const tp = queue.shift()
      if (!tp) return
      const outcome = await copyOne(options, plan, tp, settings)
      reports.set(tp.tenant.id, outcome.report)
      warnings.push(...outcome.warnings)
      if (outcome.report.status === 'failed' && options.strict) strictStop = true
    }
  }
  await Promise.all(
    Array.from({ length: Math.min(settings.jobs, Math.max(1, todo.length)) }, worker),
  )
  for (const tp of queue) reports.set(tp.tenant.id, { ...pending(tp), status: 'not-run' })
  return { reports, warnings, strictStop }
}

/** How many callers wait for a connection of a `pg.Pool` (0 for another handle). */
function poolWaiters(db: ConnectableQueryable): number {
  const waiting = (db as { waitingCount?: unknown }).waitingCount
  return typeof waiting === 'number' ? waiting : 0
}

/** The most connections a pg.Pool opens (`options.max`); 0 when it does not say. */
function poolSize(db: ConnectableQueryable): number {
  const max = (db as { options?: { max?: unknown } }).options?.max
  return typeof max === 'number' ? max : 0
}

/** Runs `fn` on a connection of its own. */
async function withClient<T>(
  db: ConnectableQueryable,
  fn: (client: Queryable) => Promise<T>,
): Promise<T> {
  const client = await db.connect()
  try {
    return await fn(client)
  } finally {
    client.release()
  }
}

/** Copies one tenant on a connection of its own; a failure becomes a `failed` report. */
async function copyOne(
  options: MigrateOptions,
  plan: MigrationPlan,
  tp: TenantPlan,
  settings: CopySettings,
): Promise<{ report: TenantReport; warnings: readonly string[] }> {
  const client = await options.db.connect()
  let broken: Error | undefined
  const started = Date.now()
  try {
    emit(options.onEvent, {
      type: 'tenant-start',
      tenantId: tp.tenant.id,
      schema: tp.tenant.schema,
      rows: tp.estimatedRows,
      tables: tp.tables.length,
    })
    const r = await copyTenant(client, plan, tp, {
      guard: settings.guard,
      verify: settings.verify,
      citus: settings.citus,
      asyncCommit: true,
      fresh: !settings.ledger.has(tp.tenant.id),
      ...(options.onEvent ? { onEvent: options.onEvent } : {}),
    })
    const report = copiedReport(tp, r, settings.verify)
    const rows = report.rows
    if (r.status === 'migrated')
      emit(options.onEvent, { type: 'tenant-done', tenantId: tp.tenant.id, rows, ms: r.ms })
    else
      emit(options.onEvent, {
        type: 'tenant-skipped',
        tenantId: tp.tenant.id,
        reason: r.reason ?? 'done',
      })
    return { report, warnings: r.warnings ?? [] }
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err)
    if (isConnectionLoss(err)) broken = err as Error
    emit(options.onEvent, { type: 'tenant-failed', tenantId: tp.tenant.id, error: message })
    if (!broken) {
      await recordFailure(
        client,
        plan.targetSchema,
        tp.tenant.id,
        tp.tenant.schema,
        plan.idStrategy,
        message,
      ).catch(() => {})
    }
    const report: TenantReport = {
      ...pending(tp),
      status: 'failed',
      error: message,
      ms: Date.now() - started,
    }
    return { report, warnings: [] }
  } finally {
    client.release(broken)
  }
}

/** The report of a tenant `copyTenant` migrated or skipped. */
function copiedReport(tp: TenantPlan, r: CopyResult, verify: boolean): TenantReport {
  const tables = r.tables.map((t) => {
    const check = r.checks.find((c) => c.table === t.table)
    return {
      table: t.table,
      rows: t.rows,
      checksum: verify ? ('ok' as const) : ('skipped' as const),
      ...(check ? { check } : {}),
    }
  })
  return {
    ...pending(tp),
    status: r.status === 'migrated' ? 'migrated' : 'skipped',
    tables,
    rows: tables.reduce((n, t) => n + t.rows, 0),
    ms: r.ms,
  }
}

function isConnectionLoss(err: unknown): boolean {
  const code = (err as { code?: string } | undefined)?.code
  return code === undefined
    ? !(err instanceof MigrationError)
    : code.startsWith('08') || code === '57P01'
}
