import { MigrationError } from '../errors/index.js'
import { DEFAULTS } from '../sql/defaults.js'
import type { ConnectableQueryable, Queryable } from '../sql/queryable.js'
import { quoteQualified } from '../sql/quote.js'
import { parseTenantId } from '../tenants/id-types.js'
import { type CheckItem, checkTables, describeCheck, type TableCheck } from './checks.js'
import { sqlContext } from './copy.js'
import { unbuiltIndexes } from './deferred-indexes.js'
import { LEDGER_TABLE, type LedgerEntry, readLedger } from './ledger.js'
import { legacyChangedSinceCutover, servedFrom } from './online/guards.js'
import {
  type MigrationPlan,
  type MigrationPlanOptions,
  planMigration,
  type TablePlan,
  type TenantPlan,
} from './plan.js'
import { bindMigrationTenant, citusInstalled } from './tenant-setting.js'
import { nothingToVerify, uncheckedTables } from './verify-empty.js'

/**
 * The verification of one migrated tenant.
 */
export interface TenantVerification {
  readonly tenantId: string
  readonly schema: string
  readonly ok: boolean
  readonly tables: readonly TableCheck[]
  readonly problems: readonly string[]
}

/**
 * A legacy tenant that has not been migrated, and why (from the ledger and the plan).
 *
 * @example
 * ```ts
 * const m: MissingTenant = { tenantId: '5', schema: 'Acme Corp "Q4".eu', state: 'not started',
 *   reason: 'blocked by drift: film.rating is ... (and 1 more)' }
 * ```
 */
export interface MissingTenant {
  readonly tenantId: string
  readonly schema: string
  /** The ledger state (`pending`: a run failed; `rolled_back`), or `not started` when the ledger has no row. */
  readonly state: 'not started' | 'pending' | 'rolled_back'
  readonly reason: string
}

/**
 * The result of {@link verifyMigration}.
 *
 * @example
 * ```ts
 * const r = await verifyMigration({ db: pool })
 * r.ok // true when every migrated tenant matches and no legacy tenant is left unmigrated
 * ```
 */
export interface VerificationReport {
  /**
   * Every checked tenant matches, and (unless `tenantIds` named the tenants) none
   * is missing; never true when there was nothing to check (see `problems`).
   */
  readonly ok: boolean
  readonly tenants: readonly TenantVerification[]
  /** Legacy tenants with no finished migration (empty when `tenantIds` named the tenants to check). */
  readonly missing: readonly MissingTenant[]
  /** Secondary indexes a migration dropped for its copy and has not built again (a run stopped midway; rerun it). */
  readonly unbuiltIndexes: readonly string[]
  /**
   * What kept the verification as a whole from checking anything, with what to
   * do: no legacy tenant found and none in the ledger (unless `allowEmpty`).
   */
  readonly problems: readonly string[]
}

/**
 * Options of {@link verifyMigration}.
 */
export interface VerifyOptions extends Omit<MigrationPlanOptions, 'all' | 'models' | 'idStrategy'> {
  readonly db: ConnectableQueryable
  /** Record the outcome in the ledger (`verified_at`, `verify_ok`); true by default. */
  readonly record?: boolean
  /** A database with no tenant at all (no legacy tenant, none migrated) is ok: none is expected. */
  readonly allowEmpty?: boolean
}

/**
 * Loads the plan and ledger entries of the migrated tenants (all, or `tenantIds`).
 * Throws for an id the ledger does not know.
 *
 * @example
 * ```ts
 * const { plan, items } = await migratedTenants(pool, { tenantIds: ['7'] })
 * items[0].entry.state // 'done'
 * ```
 */
export async function migratedTenants(
  db: Queryable,
  options: Omit<MigrationPlanOptions, 'all' | 'models' | 'idStrategy'>,
): Promise<{
  plan: MigrationPlan
  items: { tp: TenantPlan; entry: LedgerEntry }[]
  missing: MissingTenant[]
}> {
  const targetSchema = options.targetSchema ?? DEFAULTS.schema
  const ledger = await readLedger(db, targetSchema)
  const migrated = [...ledger.values()].filter((e) =>
    ['done', 'partial', 'schema_dropped'].includes(e.state),
  )
  const plan = await planMigration(db, {
    ...options,
    all: true,
    tenantIds: [],
    idStrategy: migrated.some((e) => e.idStrategy === 'remap') ? 'remap' : 'composite',
  })
  let wanted = migrated
  const named = options.tenantIds !== undefined && options.tenantIds.length > 0
  const missing = named
    ? []
    : plan.tenants
        .filter((tp) => !migrated.some((e) => e.tenantId === tp.tenant.id))
        .map((tp) => missingTenant(tp, ledger.get(tp.tenant.id)))
  if (named) {
    const ids = options.tenantIds!.map((raw) => parseTenantId(plan.idType, raw))
    const missing = ids.filter((id) => !migrated.some((e) => e.tenantId === id))
    const unknown = missing.filter(
      (id) => !ledger.has(id) && !plan.tenants.some((tp) => tp.tenant.id === id),
    )
    if (unknown.length > 0) {
      throw new MigrationError(
        `Tenant ${unknown.join(', ')} is neither a legacy tenant of the source nor in the ledger ` +
          `${targetSchema}.${LEDGER_TABLE}: check the id, and that the connection and the source options ` +
          '(`legacyTenantsTable`, `schemaPattern`) name the migrated database and its tenants. Nothing was checked.',
      )
    }
    if (missing.length > 0) {
      throw new MigrationError(
        `Tenant ${missing.join(', ')} has not been migrated (no finished entry in ${targetSchema}.${LEDGER_TABLE}). ` +
          'Run rowtenancy migrate-to-row-tenancy for it first.',
      )
    }
    wanted = migrated.filter((e) => ids.includes(e.tenantId))
  }
  const items = wanted.map((entry) => {
    const tp = plan.tenants.find((t) => t.tenant.id === entry.tenantId)
    const fallback: TenantPlan = {
      tenant: { id: entry.tenantId, schema: entry.schema, slug: '', name: '', domains: [] },
      drift: [],
      blocked: true,
      tables: [],
      allTables: [],
      estimatedRows: 0,
    }
    return { tp: tp ?? fallback, entry }
  })
  return { plan, items, missing }
}

/** Why a legacy tenant is not migrated: the ledger's last error, its drift, or never run. */
function missingTenant(tp: TenantPlan, entry: LedgerEntry | undefined): MissingTenant {
  const base = { tenantId: tp.tenant.id, schema: tp.tenant.schema }
  const blocking = tp.drift.filter((d) => d.blocking)
  const drift =
    blocking.length > 0
      ? `blocked by drift: ${blocking[0]!.message}${blocking.length > 1 ? ` (and ${blocking.length - 1} more)` : ''}`
      : undefined
  if (entry?.state === 'rolled_back') {
    return {
      ...base,
      state: 'rolled_back',
      reason: 'rolled back (rowtenancy rollback); migrate it again',
    }
  }
  if (entry?.state === 'pending') {
    return {
      ...base,
      state: 'pending',
      reason: `the last run failed: ${entry.lastError ?? 'no error recorded'}`,
    }
  }
  return { ...base, state: 'not started', reason: drift ?? 'never migrated' }
}

/**
 * Checks one migrated tenant: for every table in its ledger entry, row count and
 * checksum of source vs target, target vs what the ledger recorded, and orphaned
 * foreign keys. When the schema has been dropped, the target is compared with the
 * ledger alone. Run it inside a transaction (the checks toggle planner settings locally).
 *
 * @example
 * ```ts
 * const { plan, items } = await migratedTenants(client, {})
 * const v = await verifyTenant(client, plan, items[0].tp, items[0].entry)
 * v.problems // []
 * ```
 */
export async function verifyTenant(
  db: Queryable,
  plan: MigrationPlan,
  tp: TenantPlan,
  entry: LedgerEntry,
): Promise<TenantVerification> {
  if (
    entry.state === 'done' &&
    (await servedFrom(db, plan.targetSchema, entry.tenantId)) === 'shared'
  ) {
    // Cut over by an online migration: the shared rows have taken the app's writes since; what
    // can be checked is that the legacy schema still holds what the cut-over verified.
    const problems = [
      ...uncheckedTables(tp, entry, plan.targetSchema),
      ...(await legacyChangedSinceCutover(db, plan, tp, entry)),
    ]
    const base = { tenantId: entry.tenantId, schema: entry.schema, tables: [] }
    return { ...base, ok: problems.length === 0, problems }
  }
  const ctx = sqlContext(plan, { ...tp, tenant: { ...tp.tenant, schema: entry.schema } })
  const dropped = entry.state === 'schema_dropped'
  const tables: TableCheck[] = []
  const problems: string[] = uncheckedTables(tp, entry, plan.targetSchema)
  const items: CheckItem[] = []
  for (const [name, recorded] of Object.entries(entry.tables)) {
    let t: TablePlan | undefined = tp.tables.find((x) => x.name === name)
    const target = plan.targets.get(name)
    if (!target) {
      problems.push(`${plan.targetSchema}.${name} no longer exists`)
      continue
    }
    if (!t && !dropped) {
      problems.push(`${entry.schema}.${name} is missing from the source schema`)
      continue
    }
    t ??= {
      name,
      source: target,
      target,
      columns: recorded.columns,
      insertColumns: [],
      casts: new Map(),
      overriding: false,
      remapColumns: new Map(),
    }
    items.push({
      table: { ...t, columns: recorded.columns },
      expected: { rows: recorded.rows, checksum: recorded.checksum },
    })
  }
  for (const check of await checkTables(db, ctx, items, { orphans: true, source: !dropped })) {
    tables.push(check)
    if (!check.ok) problems.push(describeCheck(check))
  }
  return {
    tenantId: entry.tenantId,
    schema: entry.schema,
    ok: problems.length === 0,
    tables,
    problems,
  }
}

/**
 * `rowtenancy verify`: recomputes, for every migrated tenant (or `tenantIds`),
 * per-table row counts and order-independent checksums on both sides, in a
 * read-only snapshot, and records the outcome in the ledger. Without `tenantIds`,
 * every legacy tenant with no finished migration is listed in `missing` with the
 * reason (the ledger's last error, blocking drift, a rollback, never run), and
 * makes the report not `ok`; so does an index a migration dropped for its copy and
 * has not built again (`unbuiltIndexes`: a run stopped midway, rerun it), and a
 * verification that compared nothing: no tenant found at all (`problems`, unless
 * `allowEmpty`), a tenant whose ledger entry records no table, or a table of a
 * migrated schema that the migration did not copy (in the tenant's `problems`).
 *
 * @example
 * ```ts
 * const report = await verifyMigration({ db: pool, tenantIds: ['7'] })
 * if (!report.ok) console.error(report.tenants.flatMap((t) => t.problems))
 * ```
 */
export async function verifyMigration(options: VerifyOptions): Promise<VerificationReport> {
  const client = await options.db.connect()
  const results: TenantVerification[] = []
  let missing: MissingTenant[] = []
  let unbuilt: string[] = []
  let problems: string[] = []
  let plan: MigrationPlan
  try {
    const citus = await citusInstalled(client)
    await client.query('begin isolation level repeatable read read only')
    const found = await migratedTenants(client, options)
    plan = found.plan
    missing = found.missing
    unbuilt = (await unbuiltIndexes(client, plan.targetSchema)).map((i) => i.name)
    const empty = options.allowEmpty
      ? undefined
      : await nothingToVerify(client, plan, options, found)
    if (empty !== undefined) problems = [empty]
    for (const { tp, entry } of found.items) {
      // A forced policy shows only the bound tenant's rows (on Citus: on the workers too).
      await bindMigrationTenant(client, entry.tenantId, citus)
      results.push(await verifyTenant(client, plan, tp, entry))
    }
    await client.query('commit')
    if (options.record !== false) {
      for (const r of results) {
        await client.query(
          `update ${quoteQualified(plan.targetSchema, LEDGER_TABLE)} set verified_at = now(), verify_ok = $2 where tenant_id = $1`,
          [r.tenantId, r.ok],
        )
      }
    }
  } catch (err) {
    await client.query('rollback').catch(() => {})
    throw err
  } finally {
    client.release()
  }
  return {
    ok:
      results.every((r) => r.ok) &&
      missing.length === 0 &&
      unbuilt.length === 0 &&
      problems.length === 0,
    tenants: results,
    missing,
    unbuiltIndexes: unbuilt,
    problems,
  }
}
