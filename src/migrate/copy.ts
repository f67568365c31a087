import { MigrationError } from '../errors/index.js'
import type { Queryable } from '../sql/queryable.js'
import { checkTables, describeCheck, type TableCheck, tenantScoped } from './checks.js'
import {
  existingRowsStatement,
  insertStatement,
  mapStatement,
  type SqlContext,
} from './copy-sql.js'
import { emit, type MigrationListener } from './events.js'
import type { CopyGuard } from './guard.js'
import { type LedgerEntry, type LedgerTable, lockLedgerEntry, writeLedgerEntry } from './ledger.js'
import type { MigrationPlan, TenantPlan } from './plan.js'
import { ensureTenantRow } from './tenant-row.js'

/**
 * What happened to one tenant in a run.
 *
 * @example
 * ```ts
 * const r: CopyResult = { status: 'migrated', tables: [{ table: 'book', rows: 3 }], checks: [], ms: 12 }
 * ```
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
 *
 * @example
 * ```ts
 * const o: CopyOptions = { guard: 'replica', verify: true }
 * ```
 */
export interface CopyOptions {
  readonly guard: CopyGuard
  readonly verify: boolean
  readonly onEvent?: MigrationListener
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
 * before `COMMIT`. A crash or error anywhere leaves either the whole tenant or
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
  await client.query('begin')
  try {
    await client.query(
      "select pg_advisory_xact_lock(hashtext('rowtenancy.migrate'), hashtext($1))",
      [tp.tenant.id],
    )
    if (options.guard === 'replica')
      await client.query('set local session_replication_role = replica')
    await client.query('set constraints all deferred')
    // Each statement is one table scan: JIT compilation only adds latency (often 100+ ms a query).
    await client.query('set local jit = off')
    await client.query("select set_config('rowtenancy.tenant_id', $1, true)", [tp.tenant.id])
    const entry = await lockLedgerEntry(client, plan.targetSchema, tp.tenant.id)
    if (entry?.state === 'schema_dropped') {
      throw new MigrationError(
        `Tenant ${tp.tenant.id} was migrated and its schema dropped; nothing to do.`,
      )
    }
    const done = entry && entry.state !== 'rolled_back' ? entry.tables : {}
    if (entry && Object.keys(done).length > 0 && entry.idStrategy !== plan.idStrategy) {
      throw new MigrationError(
        `Tenant ${tp.tenant.id} was partly migrated with \`idStrategy\` ${entry.idStrategy}; finish it with the same strategy.`,
      )
    }
    const tables = tp.tables.filter((t) => done[t.name] === undefined)
    if (tables.length === 0) {
      await client.query('rollback')
      return { status: 'skipped', reason: 'already migrated', tables: [], checks: [], ms: 0 }
    }
    await tenantScoped(client, async () => {
      for (const t of tables) {
        const s = existingRowsStatement(ctx, t)
        if ((await client.query(s.text, s.values)).rows[0]?.found) {
          throw new MigrationError(
            `${plan.targetSchema}.${t.name} already holds rows of tenant ${tp.tenant.id} that the ledger does not ` +
              'account for; copying would duplicate them. Remove them (or rollback the tenant) and rerun.',
          )
        }
      }
    })
    const tenantRow = await ensureTenantRow(client, plan.tenantsSchema, plan.idType, tp.tenant)
    for (const t of tables) {
      const m = mapStatement(ctx, t)
      if (m) await client.query(m.text, m.values)
    }
    const copied: { table: string; rows: number }[] = []
    for (const t of tables) {
      const s = insertStatement(ctx, t)
      // remap looks every key up in the id map, which grows faster than its statistics
      const res =
        t.remapColumns.size > 0
          ? await tenantScoped(client, () => client.query(s.text, s.values))
          : await client.query(s.text, s.values)
      copied.push({ table: t.name, rows: res.rowCount ?? 0 })
      emit(options.onEvent, {
        type: 'table-copied',
        tenantId: tp.tenant.id,
        table: t.name,
        rows: res.rowCount ?? 0,
      })
    }
    const ledgerTables: Record<string, LedgerTable> = { ...done }
    const rowsOf = (name: string) => copied.find((c) => c.table === name)!.rows
    let checks: TableCheck[] = []
    if (options.verify) {
      checks = await checkTables(
        client,
        ctx,
        tables.map((table) => ({ table })),
        { orphans: options.guard === 'replica' },
      )
      for (const check of checks) {
        if (!check.ok || check.targetRows !== rowsOf(check.table)) {
          throw new MigrationError(
            `Verification failed for tenant ${tp.tenant.id}: ${describeCheck(check)}.`,
          )
        }
      }
    }
    for (const t of tables) {
      // --no-verify: no scan at all; the checksum is filled in by drop-schemas after its verify.
      const checksum = checks.find((c) => c.table === t.name)?.targetChecksum ?? ''
      ledgerTables[t.name] = { rows: rowsOf(t.name), checksum, columns: t.columns }
    }
    if (options.verify)
      emit(options.onEvent, { type: 'tenant-verified', tenantId: tp.tenant.id, ok: true })
    const complete = tp.allTables.every((name) => ledgerTables[name] !== undefined)
    const now = new Date()
    const next: LedgerEntry = {
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
    }
    await writeLedgerEntry(client, plan.targetSchema, next)
    await client.query('commit')
    const warnings = tenantRow.skippedDomains.map(
      (d) => `Domain ${d} of tenant ${tp.tenant.id} belongs to another tenant; not added.`,
    )
    return { status: 'migrated', tables: copied, checks, ms: Date.now() - started, warnings }
  } catch (err) {
    await client.query('rollback').catch(() => {})
    throw err
  }
}
