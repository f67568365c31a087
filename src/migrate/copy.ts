import { MigrationError } from '../errors/index.js'
import { isConnectionError, type Queryable } from '../sql/queryable.js'
import { quoteLiteral, quoteQualified } from '../sql/quote.js'
import {
  describeCheck,
  foreignKeyOrphansOfTables,
  orphansOfTablesStatement,
  type TableCheck,
  tenantScoped,
} from './checks.js'
import {
  copyWithChecksumStatement,
  sourceChecksumsStatement,
  targetChecksumsStatement,
} from './copy-checksum-sql.js'
import { constraintFailure } from './copy-failure.js'
import {
  existingRowsStatement,
  insertStatement,
  type SqlContext,
  type Statement,
  tenantRowsExist,
} from './copy-sql.js'
import { emit, type MigrationListener } from './events.js'
import type { CopyGuard } from './guard.js'
import {
  LEDGER_TABLE,
  type LedgerEntry,
  type LedgerTable,
  ledgerEntryOf,
  lockLedgerEntryStatement,
  writeLedgerEntry,
} from './ledger.js'
import type { MigrationPlan, TablePlan, TenantPlan } from './plan.js'
import { allocateIds, remapFailure } from './remap-sql.js'
import { CHECKSUM_SETTINGS } from './row-checksum.js'
import { ensureTenantRow, finishTenantRow, tenantRowStatement } from './tenant-row.js'
import { citusInstalled, citusTenantSettingSql } from './tenant-setting.js'

/**
 * What happened to one tenant in a run.
 */
export interface CopyResult {
  readonly status: 'migrated' | 'skipped'
  readonly reason?: string
  readonly tables: readonly { readonly table: string; readonly rows: number }[]
  readonly checks: readonly TableCheck[]
  readonly ms: number
  readonly warnings?: readonly string[]
}

/**
 * Options of {@link copyTenant}.
 */
export interface CopyOptions {
  readonly guard: CopyGuard
  readonly verify: boolean
  readonly onEvent?: MigrationListener
  /**
   * The database is a Citus coordinator (detected when not given): each table is
   * copied by a plain `INSERT ... SELECT` and checked by separate statements in the
   * same transaction, and the tenant is bound with `SET LOCAL`, forwarded to the
   * workers.
   */
  readonly citus?: boolean
  /**
   * COMMIT without waiting for the WAL flush (`synchronous_commit = off` for the tenant's
   * transaction; not on Citus). A server crash may then undo the last tenants committed,
   * each whole and with its ledger row, so a rerun copies them again; the caller flushes
   * ({@link flushCommits}) before it reports them. False by default.
   */
  readonly asyncCommit?: boolean
  /**
   * The run found no ledger row of this tenant when it started: its lock, claim and copy are
   * then sent in one round trip, falling back to the step-by-step copy when anything in it
   * fails or the ledger row turns out to exist (another run got there first).
   */
  readonly fresh?: boolean
}

/** Both sides' counts and checksums of one table (the row of {@link copyWithChecksumStatement}). */
interface ChecksumRow {
  source_n: string
  source_sum: string
  target_n: string
  target_sum: string
}

/** The `"<i>.n"` / `"<i>.sum"` row of a batched checksum statement, by table name. */
async function readSums(
  client: Queryable,
  s: Statement,
  tables: readonly TablePlan[],
): Promise<Map<string, { n: string; sum: string }>> {
  const row = (await client.query(s.text, s.values)).rows[0] ?? {}
  return new Map(tables.map((t, i) => [t.name, { n: row[`${i}.n`], sum: row[`${i}.sum`] }]))
}

/**
 * The checks of a copy, in the tenant's transaction after its last table: both
 * sides' checksums (`sums` when the copy statements computed them, else read here:
 * every source table in one statement, then every target table in one, the
 * tenant's rows read back as stored), and the orphans in one statement.
 */
async function copyChecks(
  client: Queryable,
  ctx: SqlContext,
  tables: readonly TablePlan[],
  sums: ReadonlyMap<string, ChecksumRow> | undefined,
  orphans: boolean,
): Promise<TableCheck[]> {
  if (sums) {
    // The settings stay until the transaction ends: only the ledger write and COMMIT follow.
    const o = orphans
      ? orphansOfTablesStatement(ctx, tables, quoteLiteral(ctx.tenantId))
      : undefined
    const found = o
      ? o.read((await many(client, `${SCOPED}; ${o.text}`)).at(-1)?.rows[0])
      : new Map()
    return tableChecks(tables, sums, undefined, undefined, found)
  }
  const source = await readSums(client, sourceChecksumsStatement(ctx, tables), tables)
  return tenantScoped(client, async () => {
    const target = await readSums(client, targetChecksumsStatement(ctx, tables), tables)
    const found = orphans ? await foreignKeyOrphansOfTables(client, ctx, tables) : new Map()
    return tableChecks(tables, undefined, source, target, found)
  })
}

/** One {@link TableCheck} per table, from the copy's sums or from both sides read after it. */
function tableChecks(
  tables: readonly TablePlan[],
  sums: ReadonlyMap<string, ChecksumRow> | undefined,
  source: Map<string, { n: string; sum: string }> | undefined,
  target: Map<string, { n: string; sum: string }> | undefined,
  found: ReadonlyMap<string, { fk: string; rows: number }[]>,
): TableCheck[] {
  return tables.map((t) => {
    const sum = sums?.get(t.name) ?? {
      source_n: source!.get(t.name)!.n,
      source_sum: source!.get(t.name)!.sum,
      target_n: target!.get(t.name)!.n,
      target_sum: target!.get(t.name)!.sum,
    }
    const broken = found.get(t.name) ?? []
    const sourceRows = Number(sum.source_n)
    const targetRows = Number(sum.target_n)
    return {
      table: t.name,
      sourceRows,
      targetRows,
      sourceChecksum: sum.source_sum,
      targetChecksum: sum.target_sum,
      orphans: broken,
      ok: broken.length === 0 && sourceRows === targetRows && sum.source_sum === sum.target_sum,
    }
  })
}

/**
 * The planner settings of {@link tenantScoped}, for the rest of the transaction, as a
 * statement to send ahead of a tenant-side query in the same round trip.
 */
const SCOPED =
  "select set_config('enable_seqscan', 'off', true), set_config('enable_nestloop', 'off', true)"

/** One statement's result, as a multi-statement query gives them back. */
type Result = { rows: any[]; rowCount?: number | null }

/**
 * Sends several statements in ONE round trip (the simple protocol: no parameters, each
 * statement planned after the one before ran, each with its own snapshot); their results.
 */
async function many(client: Queryable, text: string): Promise<Result[]> {
  const r: unknown = await client.query(text)
  return Array.isArray(r) ? r : [r as Result]
}

/** @internal */
export function sqlContext(plan: MigrationPlan, tp: TenantPlan): SqlContext {
  return {
    targetSchema: plan.targetSchema,
    sourceSchema: tp.tenant.schema,
    idType: plan.idType,
    tenantId: tp.tenant.id,
    tenantColumn: plan.tenantColumn,
    tenantsSchema: plan.tenantsSchema,
  }
}

/**
 * Migrates one tenant in ONE transaction on `client`: locks the tenant, skips it
 * when the ledger says it is done, refuses it when the target already holds its
 * rows, creates its `tenants` row and domains when missing, copies every table in
 * foreign-key order with `INSERT ... SELECT` (triggers quiet per `guard`),
 * verifies counts, checksums and foreign keys, and writes the ledger row, all
 * before `COMMIT`. With verify, on one PostgreSQL each table's copy statement
 * also checksums both sides; on Citus the checksums are separate statements in
 * the same transaction. A crash or error anywhere leaves either the whole tenant or
 * nothing.
 *
 * @example
 * ```ts
 * const client = await pool.connect()
 * try {
 *   await copyTenant(client, plan, plan.tenants[0], { guard: 'replica', verify: true })
 * } finally {
 *   client.release()
 * }
 * ```
 */
export async function copyTenant(
  client: Queryable,
  plan: MigrationPlan,
  tp: TenantPlan,
  options: CopyOptions,
): Promise<CopyResult> {
  const started = Date.now()
  const ctx = sqlContext(plan, tp)
  const citus = options.citus ?? (await citusInstalled(client))
  try {
    if (options.fresh && !citus && tp.tables.length > 0 && batchable(tp, tp.tables)) {
      // What broke is met again step by step, and reported precisely there; a broken
      // connection, a cancel or a timeout is reported as it is.
      const copied = await copyFresh(client, plan, tp, ctx, options).catch((err: Error) => {
        if (isConnectionError(err) || GIVE_UP.has((err as { code?: string }).code ?? '')) throw err
        return undefined
      })
      if (copied) return await finishCopy(client, plan, tp, options, { ...copied, started })
      await client.query('rollback')
    }
    // One round trip: the transaction, the tenant's lock and settings, then its ledger row (a
    // statement of its own: its snapshot sees what the last holder of the lock committed). On
    // Citus the SET LOCALs go first, alone: Citus forwards a SET's whole query string to the
    // workers. The checksum settings come after the binding, which has them forwarded there.
    if (citus) {
      await client.query(`${BEGIN}; ${citusTenantSettingSql(tp.tenant.id)}; ${CHECKSUM_SETTINGS}`)
    }
    const opening = await many(client, openingSql(plan, tp, options, citus))
    const planner = opening.at(-2)?.rows[0] as PlannerSettings
    const entry = ledgerEntryOf(opening.at(-1)?.rows[0])
    const done = finishedTables(entry, plan, tp.tenant.id)
    const tables = tp.tables.filter((t) => done[t.name] === undefined)
    if (tables.length === 0) {
      await client.query('rollback')
      return { status: 'skipped', reason: 'already migrated', tables: [], checks: [], ms: 0 }
    }
    const tenantRow = await claimTarget(client, ctx, plan, tp, tables, planner, citus)
    await allocateIds(client, ctx, tables)
    // One statement copies and checksums each table: the source is read in the statement's own
    // snapshot, so rows written to it meanwhile (an online migration serves the tenant during
    // the copy) cannot make the sides differ. Citus runs a data-modifying CTE through the
    // coordinator and supports it only in some shapes: there each table is a plain
    // INSERT ... SELECT, and the checks are separate statements (target sums on the shard).
    const oneStatement = options.verify && !citus
    // A small tenant's tables go in one round trip; a large one's table by table, for progress.
    const batch = !citus && batchable(tp, tables)
    const orphans = orphanCheck(ctx, tables, options)
    const after = batch && oneStatement && orphans ? `${SCOPED}; ${orphans.text}` : undefined
    const { copied, sums, afterRow } = await copyTables(
      client,
      ctx,
      tp.tenant.id,
      tables,
      options.onEvent,
      { oneStatement, batch, after },
    )
    const checks = !options.verify
      ? []
      : after
        ? tableChecks(tables, sums, undefined, undefined, orphans!.read(afterRow))
        : await copyChecks(
            client,
            ctx,
            tables,
            oneStatement ? sums : undefined,
            options.guard === 'replica',
          )
    return await finishCopy(client, plan, tp, options, {
      entry,
      done,
      tables,
      copied,
      checks,
      tenantRow,
      started,
    })
  } catch (err) {
    await client.query('rollback').catch(() => {})
    throw constraintFailure(
      remapFailure(err),
      tp.tenant.schema,
      plan.targetSchema,
      tp.tables.map((t) => t.target.name),
      plan.tenantColumn,
    )
  }
}

const BEGIN = 'begin; set constraints all deferred'

/** Errors of the one-trip copy that the step-by-step copy would only meet again: a cancel, a lock timeout. */
const GIVE_UP = new Set(['57014', '55P03'])

/** The transaction, the tenant's lock and settings, then its ledger row (see {@link copyTenant}). */
function openingSql(
  plan: MigrationPlan,
  tp: TenantPlan,
  options: CopyOptions,
  citus: boolean,
): string {
  const tenant = quoteLiteral(tp.tenant.id)
  return (
    `${citus ? '' : `${BEGIN}; ${CHECKSUM_SETTINGS}; `}` +
    `${lockTenantStatement(tenant, options.guard, citus, options.asyncCommit === true && !citus)}; ` +
    lockLedgerEntryStatement(plan.targetSchema, tenant)
  )
}

/** A tenant small enough, and without remapped keys, to copy in one round trip. */
function batchable(tp: TenantPlan, tables: readonly TablePlan[]): boolean {
  return tp.estimatedRows <= BATCH_ROWS && tables.every((t) => t.remapColumns.size === 0)
}

/**
 * The orphan check of a verified copy whose foreign-key triggers are quiet (`replica`): it
 * rides in the copy's round trip, after the last table (its planner settings stay until the
 * transaction ends: only the ledger follows).
 */
function orphanCheck(ctx: SqlContext, tables: readonly TablePlan[], options: CopyOptions) {
  return options.verify && options.guard === 'replica'
    ? orphansOfTablesStatement(ctx, tables, quoteLiteral(ctx.tenantId))
    : undefined
}

/** What a copy hands to {@link finishCopy}. */
interface Copied {
  readonly entry: LedgerEntry | undefined
  readonly done: Record<string, LedgerTable>
  readonly tables: readonly TablePlan[]
  readonly copied: { table: string; rows: number }[]
  readonly checks: TableCheck[]
  readonly tenantRow: { created: boolean; skippedDomains: string[] }
}

/**
 * A fresh tenant's lock, claim, copy and orphan check in ONE round trip: the claim's probe
 * fails the statement (division by zero) when a target table already holds the tenant's
 * rows, and the planner settings it changes come back from where the statement before kept
 * them. `undefined` when the ledger row exists after all or the tenant row needs more than
 * the first try; the caller then rolls back and copies step by step.
 */
async function copyFresh(
  client: Queryable,
  plan: MigrationPlan,
  tp: TenantPlan,
  ctx: SqlContext,
  options: CopyOptions,
): Promise<Copied | undefined> {
  const tenant = quoteLiteral(tp.tenant.id)
  const tables = tp.tables
  // The target holds rows of the tenant, or the ledger has a row of it after all (another run
  // got there first).
  const probe = [
    ...tables.map((t) => tenantRowsExist(ctx, t, tenant)),
    `exists (select 1 from ${quoteQualified(plan.targetSchema, LEDGER_TABLE)} l where l.tenant_id = ${tenant} ` +
      "and (l.state not in ('pending', 'rolled_back') or l.tables <> '{}'::jsonb))",
  ].join(' or ')
  const statements = copyStatements(ctx, tables, tenant, options.verify)
  const orphans = orphanCheck(ctx, tables, options)
  const results = await many(
    client,
    [
      openingSql(plan, tp, options, false),
      "select set_config('rowtenancy.planner_seq', current_setting('enable_seqscan'), true), " +
        "set_config('rowtenancy.planner_nl', current_setting('enable_nestloop'), true)",
      SCOPED,
      `select 1 / (case when ${probe} then 0 else 1 end)`,
      "select set_config('enable_seqscan', current_setting('rowtenancy.planner_seq'), true), " +
        "set_config('enable_nestloop', current_setting('rowtenancy.planner_nl'), true)",
      tenantRowStatement(plan.tenantsSchema, plan.idType, tp.tenant, { failWhenTaken: true }),
      ...statements.map((s) => s.text),
      ...(orphans ? [SCOPED, orphans.text] : []),
    ].join('; '),
  )
  // Counted from the end: the opening's statements, then 5, the copies and the orphan check.
  const base = results.length - (5 + tables.length + (orphans ? 2 : 0))
  const entry = ledgerEntryOf(results[base - 1]?.rows[0])
  const at = base + 4
  const first = results[at]?.rows[0] as { existed?: boolean; inserted?: boolean } | undefined
  const stale =
    entry &&
    ((entry.state !== 'pending' && entry.state !== 'rolled_back') ||
      Object.keys(entry.tables).length > 0)
  if (stale || !(first?.existed || first?.inserted)) return undefined
  const tenantRow = await finishTenantRow(client, plan.tenantsSchema, plan.idType, tp.tenant, first)
  const sums = new Map<string, ChecksumRow>()
  const copied = tables.map((t, i) => {
    const { rows, sum } = copiedOf(results[at + 1 + i]!, options.verify)
    if (sum) sums.set(t.name, sum)
    return { table: t.name, rows }
  })
  const checks = !options.verify
    ? []
    : orphans
      ? tableChecks(tables, sums, undefined, undefined, orphans.read(results.at(-1)?.rows[0]))
      : await copyChecks(client, ctx, tables, sums, false)
  for (const { table, rows } of copied)
    emit(options.onEvent, { type: 'table-copied', tenantId: tp.tenant.id, table, rows })
  return { entry, done: {}, tables, copied, checks, tenantRow }
}

/**
 * Checks what was copied, writes the ledger row and commits, in one round trip.
 */
async function finishCopy(
  client: Queryable,
  plan: MigrationPlan,
  tp: TenantPlan,
  options: CopyOptions,
  { entry, done, tables, copied, checks, tenantRow, started }: Copied & { started: number },
): Promise<CopyResult> {
  const rowsOf = (name: string) => copied.find((c) => c.table === name)!.rows
  assertVerified(tp.tenant.id, checks, rowsOf)
  const ledgerTables = ledgerTablesAfter(done, tables, checks, rowsOf)
  if (options.verify)
    emit(options.onEvent, { type: 'tenant-verified', tenantId: tp.tenant.id, ok: true })
  const complete = tp.allTables.every((name) => ledgerTables[name] !== undefined)
  const now = new Date()
  await writeLedgerEntry(
    client,
    plan.targetSchema,
    {
      tenantId: tp.tenant.id,
      schema: tp.tenant.schema,
      state: complete ? 'done' : 'partial',
      idStrategy: plan.idStrategy,
      tables: ledgerTables,
      createdTenant: (entry?.createdTenant ?? false) || tenantRow.created,
      startedAt: new Date(started),
      finishedAt: now,
      verifiedAt: options.verify ? now : null,
      verifyOk: options.verify ? true : null,
      lastError: null,
    },
    { commit: true },
  )
  const warnings = tenantRow.skippedDomains.map(
    (d) => `Domain ${d} of tenant ${tp.tenant.id} belongs to another tenant; not added.`,
  )
  return { status: 'migrated', tables: copied, checks, ms: Date.now() - started, warnings }
}

/** The ledger's tables once this copy commits: the earlier ones and the ones just copied. */
function ledgerTablesAfter(
  done: Record<string, LedgerTable>,
  tables: readonly TablePlan[],
  checks: readonly TableCheck[],
  rowsOf: (table: string) => number,
): Record<string, LedgerTable> {
  const ledgerTables: Record<string, LedgerTable> = { ...done }
  for (const t of tables) {
    // --no-verify: no scan at all; the checksum is filled in by drop-schemas after its verify.
    const checksum = checks.find((c) => c.table === t.name)?.targetChecksum ?? ''
    ledgerTables[t.name] = { rows: rowsOf(t.name), checksum, columns: t.columns }
  }
  return ledgerTables
}

/** The planner settings the transaction started with (restored after a tenant-side probe). */
interface PlannerSettings {
  readonly seq: string
  readonly nl: string
}

/**
 * The tenant's advisory lock and the transaction's settings, in one statement without
 * parameters (`tenant`: the id as a quoted literal); the tenant binding too, except on
 * Citus (bound with `SET LOCAL` at `BEGIN`); `synchronous_commit = off` with
 * `asyncCommit`. Its row holds the planner settings as they
 * were ({@link PlannerSettings}).
 */
function lockTenantStatement(
  tenant: string,
  guard: CopyGuard,
  citus: boolean,
  asyncCommit: boolean,
): string {
  // Each statement is one table scan: JIT compilation only adds latency (often 100+ ms a query).
  return (
    `select pg_advisory_xact_lock(hashtext('rowtenancy.migrate'), hashtext(${tenant})), ` +
    "set_config('jit', 'off', true)" +
    (asyncCommit ? ", set_config('synchronous_commit', 'off', true)" : '') +
    (citus ? '' : `, set_config('rowtenancy.tenant_id', ${tenant}, true)`) +
    (guard === 'replica' ? ", set_config('session_replication_role', 'replica', true)" : '') +
    ", current_setting('enable_seqscan') as seq, current_setting('enable_nestloop') as nl"
  )
}

/** The tables an earlier run of this tenant finished, per its ledger row. */
function finishedTables(
  entry: LedgerEntry | undefined,
  plan: MigrationPlan,
  tenantId: string,
): Record<string, LedgerTable> {
  if (entry?.state === 'schema_dropped') {
    throw new MigrationError(
      `Tenant ${tenantId} was migrated and its schema dropped; nothing to do.`,
    )
  }
  const done = entry && entry.state !== 'rolled_back' ? entry.tables : {}
  if (entry && Object.keys(done).length > 0 && entry.idStrategy !== plan.idStrategy) {
    throw new MigrationError(
      `Tenant ${tenantId} was partly migrated with \`idStrategy\` ${entry.idStrategy}; finish it with the same strategy.`,
    )
  }
  return done
}

/**
 * In one round trip: refuses a tenant whose rows already sit in a target table the
 * ledger does not account for (probed with the planner settings of
 * {@link tenantScoped}, then `planner` restored), and makes sure its `tenants` row
 * exists (with its domains).
 */
async function claimTarget(
  client: Queryable,
  ctx: SqlContext,
  plan: MigrationPlan,
  tp: TenantPlan,
  tables: readonly TablePlan[],
  planner: PlannerSettings,
  citus: boolean,
): Promise<{ created: boolean; skippedDomains: string[] }> {
  const probe = existingRowsStatement(ctx, tables, quoteLiteral(tp.tenant.id))
  const restore =
    `select set_config('enable_seqscan', ${quoteLiteral(planner.seq)}, true), ` +
    `set_config('enable_nestloop', ${quoteLiteral(planner.nl)}, true)`
  // On Citus the tenants row is written as before (an INSERT ... SELECT into the reference
  // table from two tenants at once deadlocked there).
  const tenantRow = citus ? [] : [tenantRowStatement(plan.tenantsSchema, plan.idType, tp.tenant)]
  const results = await many(client, [SCOPED, probe.text, restore, ...tenantRow].join('; '))
  const found = results[1]?.rows[0] ?? {}
  const occupied = tables.find((_t, i) => found[String(i)] === true)
  if (occupied) {
    throw new MigrationError(
      `${plan.targetSchema}.${occupied.name} already holds rows of tenant ${tp.tenant.id} that the ledger does not ` +
        'account for; copying would duplicate them. Remove them (or rollback the tenant) and rerun.',
    )
  }
  return citus
    ? ensureTenantRow(client, plan.tenantsSchema, plan.idType, tp.tenant)
    : finishTenantRow(client, plan.tenantsSchema, plan.idType, tp.tenant, results.at(-1)?.rows[0])
}

/**
 * The estimated rows (catalog statistics) up to which a tenant's tables are copied in
 * one round trip: the copy then takes little longer than the round trips it saves.
 */
const BATCH_ROWS = 100_000

/**
 * Copies the tables in order. With `oneStatement`, each table's statement also
 * checksums both sides (the source read in the statement's own snapshot); else each
 * is a plain `INSERT ... SELECT`. With `batch` (no remapped keys), every statement
 * goes in ONE round trip, the tenant id as a literal.
 */
async function copyTables(
  client: Queryable,
  ctx: SqlContext,
  tenantId: string,
  tables: readonly TablePlan[],
  onEvent: MigrationListener | undefined,
  {
    oneStatement,
    batch,
    after,
  }: { oneStatement: boolean; batch: boolean; after?: string | undefined },
): Promise<{
  copied: { table: string; rows: number }[]
  sums: Map<string, ChecksumRow>
  afterRow: Record<string, unknown> | undefined
}> {
  const copied: { table: string; rows: number }[] = []
  const sums = new Map<string, ChecksumRow>()
  const tenant = batch ? quoteLiteral(tenantId) : '$1'
  const statements = copyStatements(ctx, tables, tenant, oneStatement)
  const texts = statements.map((s) => s.text)
  const batched = batch ? await many(client, [...texts, ...(after ? [after] : [])].join('; ')) : []
  for (const [i, t] of tables.entries()) {
    const s = statements[i]!
    // remap looks every key up in the id map, which grows faster than its statistics
    const res =
      batched[i] ??
      (t.remapColumns.size > 0
        ? await tenantScoped(client, () => client.query(s.text, s.values))
        : await client.query(s.text, s.values))
    const { rows, sum } = copiedOf(res, oneStatement)
    if (sum) sums.set(t.name, sum)
    copied.push({ table: t.name, rows })
    emit(onEvent, { type: 'table-copied', tenantId, table: t.name, rows })
  }
  return { copied, sums, afterRow: after ? batched.at(-1)?.rows[0] : undefined }
}

/** Each table's copy: with both checksums in the statement (`oneStatement`), else a plain INSERT ... SELECT. */
function copyStatements(
  ctx: SqlContext,
  tables: readonly TablePlan[],
  tenant: string,
  oneStatement: boolean,
): Statement[] {
  return tables.map((t) =>
    oneStatement ? copyWithChecksumStatement(ctx, t, tenant) : insertStatement(ctx, t, tenant),
  )
}

/** The rows one table's copy stored, and the checksum row its statement returned with `oneStatement`. */
function copiedOf(
  res: Result,
  oneStatement: boolean,
): { rows: number; sum: ChecksumRow | undefined } {
  const sum = oneStatement ? (res.rows[0] as ChecksumRow) : undefined
  return { rows: sum ? Number(sum.target_n) : (res.rowCount ?? 0), sum }
}

/** Throws at the first table whose check failed or whose count differs from what was copied. */
function assertVerified(
  tenantId: string,
  checks: readonly TableCheck[],
  rowsOf: (table: string) => number,
): void {
  for (const check of checks) {
    if (!check.ok || check.targetRows !== rowsOf(check.table)) {
      throw new MigrationError(
        `Verification failed for tenant ${tenantId}: ${describeCheck(check)}.`,
      )
    }
  }
}

/**
 * Waits until every transaction committed before it on this server is durable: a
 * transaction with an id committed with `synchronous_commit = on` (set locally, whatever
 * the role or database sets) flushes the WAL up to its commit, the earlier commits
 * included. For a run whose copies committed with `asyncCommit`, before it reports them.
 *
 * @example
 * ```ts
 * await flushCommits(client)
 * ```
 */
export async function flushCommits(client: Queryable): Promise<void> {
  // A synchronous commit of a transaction with an id, whatever the role or database sets.
  await many(
    client,
    'begin; set local synchronous_commit = on; select pg_catalog.txid_current(); commit',
  )
}
