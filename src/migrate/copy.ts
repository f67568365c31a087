import { MigrationError } from '../errors/index.js'
import type { Queryable } from '../sql/queryable.js'
import {
  describeCheck,
  foreignKeyOrphansOfTables,
  type TableCheck,
  tenantScoped,
} from './checks.js'
import {
  copyWithChecksumStatement,
  sourceChecksumsStatement,
  targetChecksumsStatement,
} from './copy-checksum-sql.js'
import {
  existingRowsStatement,
  insertStatement,
  type SqlContext,
  type Statement,
} from './copy-sql.js'
import { emit, type MigrationListener } from './events.js'
import type { CopyGuard } from './guard.js'
import { type LedgerEntry, type LedgerTable, lockLedgerEntry, writeLedgerEntry } from './ledger.js'
import type { MigrationPlan, TablePlan, TenantPlan } from './plan.js'
import { allocateIds, remapFailure } from './remap-sql.js'
import { ensureTenantRow } from './tenant-row.js'
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
  const source = sums
    ? undefined
    : await readSums(client, sourceChecksumsStatement(ctx, tables), tables)
  return tenantScoped(client, async () => {
    const target = sums
      ? undefined
      : await readSums(client, targetChecksumsStatement(ctx, tables), tables)
    const found = orphans ? await foreignKeyOrphansOfTables(client, ctx, tables) : new Map()
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
  })
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
  // One round trip each: the transaction (on Citus with its tenant binding), then its lock and settings.
  await client.query(
    `begin; set constraints all deferred${citus ? `; ${citusTenantSettingSql(tp.tenant.id)}` : ''}`,
  )
  try {
    await lockTenant(client, tp.tenant.id, options.guard, citus)
    const entry = await lockLedgerEntry(client, plan.targetSchema, tp.tenant.id)
    const done = finishedTables(entry, plan, tp.tenant.id)
    const tables = tp.tables.filter((t) => done[t.name] === undefined)
    if (tables.length === 0) {
      await client.query('rollback')
      return { status: 'skipped', reason: 'already migrated', tables: [], checks: [], ms: 0 }
    }
    await refuseOccupiedTarget(client, ctx, plan, tp.tenant.id, tables)
    const tenantRow = await ensureTenantRow(client, plan.tenantsSchema, plan.idType, tp.tenant)
    await allocateIds(client, ctx, tables)
    // One statement copies and checksums each table: the source is read in the statement's own
    // snapshot, so rows written to it meanwhile (an online migration serves the tenant during
    // the copy) cannot make the sides differ. Citus runs a data-modifying CTE through the
    // coordinator and supports it only in some shapes: there each table is a plain
    // INSERT ... SELECT, and the checks are separate statements (target sums on the shard).
    const oneStatement = options.verify && !citus
    const { copied, sums } = await copyTables(
      client,
      ctx,
      tp.tenant.id,
      tables,
      oneStatement,
      options.onEvent,
    )
    const rowsOf = (name: string) => copied.find((c) => c.table === name)!.rows
    const checks = options.verify
      ? await copyChecks(
          client,
          ctx,
          tables,
          oneStatement ? sums : undefined,
          options.guard === 'replica',
        )
      : []
    assertVerified(tp.tenant.id, checks, rowsOf)
    const ledgerTables = ledgerTablesAfter(done, tables, checks, rowsOf)
    if (options.verify)
      emit(options.onEvent, { type: 'tenant-verified', tenantId: tp.tenant.id, ok: true })
    const complete = tp.allTables.every((name) => ledgerTables[name] !== undefined)
    const now = new Date()
    await writeLedgerEntry(client, plan.targetSchema, {
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
    })
    await client.query('commit')
    const warnings = tenantRow.skippedDomains.map(
      (d) => `Domain ${d} of tenant ${tp.tenant.id} belongs to another tenant; not added.`,
    )
    return { status: 'migrated', tables: copied, checks, ms: Date.now() - started, warnings }
  } catch (err) {
    await client.query('rollback').catch(() => {})
    throw remapFailure(err)
  }
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

/**
 * The tenant's advisory lock and the transaction's settings, in one statement; the
 * tenant binding too, except on Citus (bound with `SET LOCAL` at `BEGIN`).
 */
async function lockTenant(
  client: Queryable,
  tenantId: string,
  guard: CopyGuard,
  citus: boolean,
): Promise<void> {
  // Each statement is one table scan: JIT compilation only adds latency (often 100+ ms a query).
  await client.query(
    "select pg_advisory_xact_lock(hashtext('rowtenancy.migrate'), hashtext($1)), " +
      "set_config('jit', 'off', true)" +
      (citus ? '' : ", set_config('rowtenancy.tenant_id', $1, true)") +
      (guard === 'replica' ? ", set_config('session_replication_role', 'replica', true)" : ''),
    [tenantId],
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

/** Refuses a tenant whose rows already sit in a target table the ledger does not account for. */
async function refuseOccupiedTarget(
  client: Queryable,
  ctx: SqlContext,
  plan: MigrationPlan,
  tenantId: string,
  tables: readonly TablePlan[],
): Promise<void> {
  const occupied = await tenantScoped(client, async () => {
    const s = existingRowsStatement(ctx, tables)
    const found = (await client.query(s.text, s.values)).rows[0] ?? {}
    return tables.find((_t, i) => found[String(i)] === true)
  })
  if (occupied) {
    throw new MigrationError(
      `${plan.targetSchema}.${occupied.name} already holds rows of tenant ${tenantId} that the ledger does not ` +
        'account for; copying would duplicate them. Remove them (or rollback the tenant) and rerun.',
    )
  }
}

/**
 * Copies the tables in order. With `oneStatement`, each table's statement also
 * checksums both sides (the source read once, in the statement's own snapshot);
 * else each is a plain `INSERT ... SELECT`.
 */
async function copyTables(
  client: Queryable,
  ctx: SqlContext,
  tenantId: string,
  tables: readonly TablePlan[],
  oneStatement: boolean,
  onEvent: MigrationListener | undefined,
): Promise<{ copied: { table: string; rows: number }[]; sums: Map<string, ChecksumRow> }> {
  const copied: { table: string; rows: number }[] = []
  const sums = new Map<string, ChecksumRow>()
  for (const t of tables) {
    const s = oneStatement ? copyWithChecksumStatement(ctx, t) : insertStatement(ctx, t)
    // remap looks every key up in the id map, which grows faster than its statistics
    const res =
      t.remapColumns.size > 0
        ? await tenantScoped(client, () => client.query(s.text, s.values))
        : await client.query(s.text, s.values)
    const sum = oneStatement ? (res.rows[0] as ChecksumRow) : undefined
    const rows = sum ? Number(sum.target_n) : (res.rowCount ?? 0)
    if (sum) sums.set(t.name, sum)
    copied.push({ table: t.name, rows })
    emit(onEvent, { type: 'table-copied', tenantId, table: t.name, rows })
  }
  return { copied, sums }
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
