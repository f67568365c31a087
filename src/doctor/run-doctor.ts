import { citusInstalled } from '../citus/catalog.js'
import { ConfigError, InvalidInputError } from '../errors/index.js'
import {
  type TableKeyedElsewhere,
  tenantTableDiscovery,
  withDescendants,
} from '../schema/rls-apply.js'
import { parseTableRef, type TableRef } from '../schema/rls-policy.js'
import { loadTableFacts, type TableFacts } from '../sql/catalog/index.js'
import { DEFAULTS } from '../sql/defaults.js'
import type { Queryable } from '../sql/queryable.js'
import { quoteQualified } from '../sql/quote.js'
import { assertTenantIdType, type TenantIdType } from '../tenants/id-types.js'
import { existingIdType } from '../tenants/install.js'
import { checkCitus } from './check-citus.js'
import { checkDefiners } from './check-definers.js'
import { checkKeys } from './check-keys.js'
import { checkForeignTables, checkFunctions, checkRules, checkViews } from './check-objects.js'
import { checkRls, checkTenantCollations, checkTenantColumns } from './check-rls.js'
import { checkRuntimeRole } from './check-role.js'
import { checkSharedForeignKeys } from './check-shared-keys.js'
import { checkTablesFound, checkTablesLeftOut } from './check-tables-found.js'
import type { DoctorReport, Finding } from './findings.js'
import { readFunctions } from './function-catalog.js'

/**
 * Options of {@link runDoctor}.
 */
export interface DoctorOptions {
  /** The tenant-aware tables; by default every table with the tenant column except rowtenancy's own. */
  readonly tables?: readonly (string | TableRef)[] | undefined
  /** The tenant column; `tenant_id` by default. */
  readonly tenantColumn?: string | undefined
  /** The tenant id type; by default the type of `tenants.id`, else `bigint`. */
  readonly tenantIdType?: TenantIdType | undefined
  /** Schema of the tenants table (to read the id type); `public` by default. */
  readonly tenantsSchema?: string | undefined
  /** The runtime role to audit; its checks are skipped when not given. */
  readonly runtimeRole?: string | undefined
  /**
   * The Citus checks (distribution, co-location, reference tables, the binding
   * on the workers): `auto` (default) runs them when Citus is installed; `true`
   * requires Citus.
   */
  readonly citus?: boolean | 'auto' | undefined
  /** Schema of the shared tables, for the Citus checks; `public` by default. */
  readonly schema?: string | undefined
}

/**
 * Audits a live database for tenant isolation holes: RLS not enabled, not
 * forced or without the tenant policy, extra permissive policies; an unsafe
 * runtime role; keys, unique constraints, indexes and foreign keys that ignore
 * the tenant column, and foreign keys between shared and tenant-aware tables that the runtime
 * role may use to probe or write other tenants' rows; views without `security_invoker`; SECURITY DEFINER
 * functions over tenant-aware tables, or running dynamic SQL, or without a safely
 * pinned `search_path`, as an owner RLS does not bind; tenant columns that are nullable or of
 * another type; large objects and sequences the runtime role may read or set, which RLS does
 * not cover. Read-only. Each finding has a stable code, the object, and a fix.
 * A database where no table has the tenant column (nothing to audit) is the
 * finding `NO_TENANT_TABLES`, so `ok` is false.
 *
 * @example
 * ```ts
 * const report = await runDoctor(ownerPool, { runtimeRole: 'app_runtime' })
 * for (const f of report.findings) console.log(f.code, f.object, f.fix)
 * ```
 */
export async function runDoctor(db: Queryable, options: DoctorOptions = {}): Promise<DoctorReport> {
  const tenantColumn = options.tenantColumn ?? DEFAULTS.tenantColumn
  const tenantIdType = await doctorIdType(db, options)
  const { tables, keyedElsewhere } = await tablesToCheck(db, options, tenantColumn)
  const role = options.runtimeRole
    ? {
        findings: await checkRuntimeRole(db, options.runtimeRole, tables, {
          tenantColumn,
          tenantsSchema: options.tenantsSchema,
        }),
        skipped: [],
      }
    : { findings: [], skipped: ['runtime role: name it with `runtimeRole` to audit it'] }
  const citus = await citusChecks(db, options, tenantColumn, tenantIdType)
  const catalog = await readFunctions(db, tables, options.runtimeRole)
  const functions = await checkFunctions(db, tables, catalog)
  const definers = await checkDefiners(
    db,
    catalog,
    options.runtimeRole,
    new Set(functions.map((f) => f.object)),
  )
  const findings: Finding[] = [
    ...(await checkTablesFound(db, tables, tenantColumn, keyedElsewhere)),
    ...checkTablesLeftOut(tables, tenantColumn, keyedElsewhere),
    ...checkTenantColumns(tables, tenantColumn, tenantIdType),
    ...(await checkTenantCollations(db, tables, tenantColumn)),
    ...(await checkRls(db, tables, tenantColumn)),
    ...(await checkKeys(db, tables, tenantColumn)),
    ...(await checkSharedForeignKeys(
      db,
      tables,
      tenantColumn,
      options.runtimeRole,
      options.tenantsSchema,
    )),
    ...(await checkViews(db, tables)),
    ...(await checkRules(db, tables)),
    ...functions,
    ...definers,
    ...(await checkForeignTables(db, tenantColumn, options.runtimeRole)),
    ...role.findings,
    ...citus.findings,
  ].sort((a, b) => a.code.localeCompare(b.code) || a.object.localeCompare(b.object))
  const skipped = [...role.skipped, ...citus.skipped]
  return Object.freeze({
    ok: findings.length === 0,
    findings: Object.freeze(findings),
    checked: Object.freeze({
      tables: tables.map((t) => t.qualified),
      tenantColumn,
      tenantIdType,
      runtimeRole: options.runtimeRole ?? null,
    }),
    skipped: Object.freeze(skipped),
  })
}

/** The tenant id type: the option, else the `tenants` table's, else the default. */
async function doctorIdType(db: Queryable, options: DoctorOptions): Promise<TenantIdType> {
  const tenantIdType =
    options.tenantIdType ??
    (await existingIdType(db, options.tenantsSchema ?? DEFAULTS.schema)) ??
    DEFAULTS.tenantIdType
  assertTenantIdType(tenantIdType)
  return tenantIdType
}

/**
 * The named tables (all must exist) and their children, else every table with the tenant
 * column, and the tables discovery left out (none when tables are named).
 */
async function tablesToCheck(
  db: Queryable,
  options: DoctorOptions,
  tenantColumn: string,
): Promise<{ tables: TableFacts[]; keyedElsewhere: TableKeyedElsewhere[] }> {
  const named = (options.tables ?? []).map((t) => parseTableRef(t))
  // A partition or inheritance child made after `rls enable` has no policy of its own, and a
  // query naming it sees every tenant's rows: naming the parent audits its children too.
  const found =
    named.length > 0
      ? { tables: await withDescendants(db, named, new Set()), keyedElsewhere: [] }
      : await tenantTableDiscovery(db, { tenantColumn })
  const refs = found.tables
  const { tables, missing } = await loadTableFacts(
    db,
    refs.map((r) => quoteQualified(r.schema, r.name)),
    tenantColumn,
  )
  if (missing.length > 0) {
    throw new InvalidInputError(
      `No such table: ${missing.join(', ')}. Check the tenant-aware tables in your config or \`tables\`.`,
    )
  }
  return { tables, keyedElsewhere: found.keyedElsewhere }
}

/** The Citus checks: when asked (`citus: true`, an error without Citus) or when Citus is installed. */
async function citusChecks(
  db: Queryable,
  options: DoctorOptions,
  tenantColumn: string,
  tenantIdType: TenantIdType,
): Promise<{ findings: readonly Finding[]; skipped: readonly string[] }> {
  const citusWanted = options.citus ?? 'auto'
  if (citusWanted === false) return { findings: [], skipped: [] }
  const installed = await citusInstalled(db)
  if (!installed && citusWanted === true) {
    throw new ConfigError(
      'doctor --citus: the citus extension is not installed in this database; connect to the Citus coordinator.',
    )
  }
  if (!installed) return { findings: [], skipped: [] }
  return checkCitus(db, { tenantColumn, tenantIdType, schema: options.schema ?? DEFAULTS.schema })
}
