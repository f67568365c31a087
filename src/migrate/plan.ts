import { MigrationError } from '../errors/index.js'
import {
  describeTypes,
  existingSchemas,
  introspectSchemas,
  routineDefinitions,
  type TypeCatalog,
  tableNames,
} from '../sql/catalog/index.js'
import { DEFAULTS } from '../sql/defaults.js'
import { type Queryable, readAll } from '../sql/queryable.js'
import type { TenantIdType } from '../tenants/id-types.js'
import { parseTenantId } from '../tenants/id-types.js'
import { existingIdType } from '../tenants/install.js'
import { discoverTenants } from './discover.js'
import { compareWithTarget, routineDifferences } from './drift.js'
import { foreignKeyOrder } from './order.js'
import {
  columnSequences,
  type RemapKey,
  remapKeys,
  remapTables,
  type TableRemap,
} from './remap-keys.js'
import { castsDirectly } from './type-identity.js'
import type { DriftIssue, IdStrategy, SourceOptions, SourceTenant, TableInfo } from './types.js'

/** Tables of rowtenancy's own that are never tenant tables. @internal */
export const OWN_TABLES = new Set([
  'tenants',
  'tenant_domains',
  'rowtenancy_migration',
  'rowtenancy_id_map',
  'rowtenancy_serving',
  'rowtenancy_changelog',
  'rowtenancy_deferred_index',
])

/**
 * What to migrate and how; shared by `planMigration`, `migrate`, `verify` and friends.
 */
export interface MigrationPlanOptions {
  /** Where the legacy tenants come from. */
  readonly source?: SourceOptions
  /** Schema of the shared target tables (and the ledger); `public` by default. */
  readonly targetSchema?: string
  /** Schema of `tenants` / `tenant_domains`; the target schema by default. */
  readonly tenantsSchema?: string
  /** Every tenant (the default when no `tenantIds` are given). */
  readonly all?: boolean
  /** Only these legacy tenant ids; an unknown id is an error. */
  readonly tenantIds?: readonly string[]
  /** Only these tables: a name (`finance_account`) or a Django label (`finance.Account`). */
  readonly models?: readonly string[]
  /** `composite` (default) or `remap`. */
  readonly idStrategy?: IdStrategy
  /** The tenant column of the target tables; `tenant_id` by default. */
  readonly tenantColumn?: string
}

/** @deprecated Renamed to {@link MigrationPlanOptions} (`PlanOptions` of `rowtenancy/schema` is another thing); this alias goes in the next release. */
export type PlanOptions = MigrationPlanOptions

/**
 * How one source column reaches its target column when the ids are remapped.
 */
export interface RemapColumn {
  /** `key`: the table's own remapped key; `ref`: a foreign key to a remapped table. */
  readonly kind: 'key' | 'ref'
  /** The remapped table whose mapping translates the value. */
  readonly table: string
  /** Columns of this table whose source values, with the value, find the mapping (a multi-column key); none by default. */
  readonly scope?: readonly string[]
}

/**
 * One table of one tenant: source, target, and the columns that are copied.
 *
 * @example
 * ```ts
 * plan.tenants[0].tables[0].columns // ['id', 'title', 'author_id']
 * ```
 */
export interface TablePlan {
  readonly name: string
  readonly source: TableInfo
  readonly target: TableInfo
  /** Source columns that have a target column (compared by verify). */
  readonly columns: readonly string[]
  /** The subset that is inserted (target generated columns compute themselves). */
  readonly insertColumns: readonly string[]
  /** Target types, by column, for columns whose source type differs. */
  readonly casts: ReadonlyMap<string, string>
  /**
   * The columns of `casts` cast by PostgreSQL's own cast (built-in types widened, see
   * `castsDirectly`); the others go through their text.
   */
  readonly directCasts?: ReadonlySet<string>
  /** `OVERRIDING SYSTEM VALUE` is needed (a GENERATED ALWAYS identity column). */
  readonly overriding: boolean
  /** Remap strategy: the table's new-key sequence (when its key is remapped). */
  readonly remapSequence?: string
  /** Remap strategy: the key column that gets new ids. */
  readonly remapKey?: string
  /** Remap strategy: how each translated column is mapped. */
  readonly remapColumns: ReadonlyMap<string, RemapColumn>
  /** Remap strategy: how the table's key gets new values (sequence, or largest + row number). */
  readonly remapAllocation?: RemapKey
}

/**
 * The plan for one tenant.
 *
 * @example
 * ```ts
 * const t = plan.tenants.find((p) => p.tenant.id === '7')
 * t?.blocked // false
 * ```
 */
export interface TenantPlan {
  readonly tenant: SourceTenant
  readonly drift: readonly DriftIssue[]
  readonly blocked: boolean
  readonly tables: readonly TablePlan[]
  /** Every tenant table the schema has, selected by `models` or not (for the ledger's `done`). */
  readonly allTables: readonly string[]
  readonly estimatedRows: number
}

/**
 * Everything a run needs to know, computed read-only from the catalogs.
 *
 * @example
 * ```ts
 * const plan = await planMigration(pool, { all: true })
 * plan.tenants.length // 3
 * ```
 */
export interface MigrationPlan {
  readonly targetSchema: string
  readonly tenantsSchema: string
  readonly idType: TenantIdType
  readonly idStrategy: IdStrategy
  readonly tenantColumn: string
  /** Every tenant table (in the selection), in foreign-key order. */
  readonly tables: readonly string[]
  /** Tables caught in a foreign-key cycle. */
  readonly cyclicTables: ReadonlySet<string>
  readonly targets: ReadonlyMap<string, TableInfo>
  readonly tenants: readonly TenantPlan[]
  readonly warnings: readonly string[]
}

/**
 * Resolves `--model` values to table names: `app.Model` becomes `app_model`
 * (Django's default `db_table`), a plain name is taken as is.
 *
 * @example
 * ```ts
 * resolveModel('finance.Account') // 'finance_account'
 * resolveModel('book') // 'book'
 * ```
 */
export function resolveModel(model: string): string {
  const m = /^([A-Za-z_][\w]*)\.([A-Za-z_][\w]*)$/.exec(model)
  return m ? `${m[1]!.toLowerCase()}_${m[2]!.toLowerCase()}` : model
}

/**
 * Builds the migration plan: discovers the tenants, reads every tenant schema and
 * the target, compares them (drift), orders the tables by foreign key and works
 * out each table's column list. Reads only; never writes. Throws a `MigrationError`
 * (saying what to do) for a missing target schema, a missing tenants table, an
 * unknown tenant id or model.
 *
 * @example
 * ```ts
 * const plan = await planMigration(pool, { source: { schemaPattern: 'tenant_{id}' }, all: true })
 * for (const t of plan.tenants) console.log(t.tenant.schema, t.blocked, t.estimatedRows)
 * ```
 */
export async function planMigration(
  db: Queryable,
  options: MigrationPlanOptions,
): Promise<MigrationPlan> {
  const settings = planSettings(options)
  const { targetSchema, tenantsSchema, idStrategy, tenantColumn } = settings
  // Independent reads go at once (each on a connection of the pool): the target schema's
  // check beside the discovery, the routines and row security beside the tables.
  const [, discovered] = await readAll(db, [
    () => requireTargetSchema(db, targetSchema),
    async () => {
      const idType = await requireTenantsTable(db, tenantsSchema)
      return { idType, found: await discoverTenants(db, options.source ?? {}, idType) }
    },
  ])
  const { idType, found } = discovered
  const { tenants, otherSchemas } = selectTenants(found.tenants, options, settings, idType)
  // A schema that does not exist reads as one without tables, routines or policies.
  const named = tenants.map((t) => t.schema)
  const [present, introspected, routines, hidden] = await readAll(db, [
    () => existingSchemas(db, named),
    () => introspectSchemas(db, [...named, targetSchema]),
    () => routineDefinitions(db, [...named, targetSchema]),
    () => rowSecurityHidden(db, named),
  ])
  const targets = introspected.get(targetSchema)!
  const { allNames, selected } = selectTables(tenants, introspected, options.models)
  const { order, cyclic } = foreignKeyOrder(
    selected,
    foreignKeyEdges(tenants, introspected, targets, targetSchema),
  )
  const [elsewhere, types, sequences] = await readAll(db, [
    () =>
      options.models && options.models.length > 0
        ? Promise.resolve([])
        : tablesElsewhere(db, otherSchemas, allNames, targets, tenantColumn),
    () => describeTypes(db, columnTypeOids(introspected)),
    () => (idStrategy === 'remap' ? columnSequences(db, targetSchema) : Promise.resolve(undefined)),
  ])
  const keys = sequences
    ? remapKeys(targets, sequences, tenantColumn, new Set(order), types)
    : new Map<string, RemapKey>()
  const plans = tenants.map((tenant) =>
    present.has(tenant.schema)
      ? tenantPlan(tenant, introspected.get(tenant.schema)!, {
          settings,
          targets,
          order,
          elsewhere,
          routines,
          types,
          keys,
          hidden,
        })
      : missingSchemaPlan(tenant),
  )
  return {
    targetSchema,
    tenantsSchema,
    idType,
    idStrategy,
    tenantColumn,
    tables: order,
    cyclicTables: cyclic,
    targets,
    tenants: plans,
    warnings: [...found.warnings],
  }
}

interface PlanSettings {
  readonly targetSchema: string
  readonly tenantsSchema: string
  readonly idStrategy: IdStrategy
  readonly tenantColumn: string
}

function planSettings(options: MigrationPlanOptions): PlanSettings {
  const targetSchema = options.targetSchema ?? DEFAULTS.schema
  const idStrategy = options.idStrategy ?? 'composite'
  if (idStrategy !== 'composite' && idStrategy !== 'remap') {
    throw new MigrationError(
      `Unknown id strategy ${JSON.stringify(idStrategy)}: use composite or remap.`,
    )
  }
  return {
    targetSchema,
    tenantsSchema: options.tenantsSchema ?? targetSchema,
    idStrategy,
    tenantColumn: options.tenantColumn ?? DEFAULTS.tenantColumn,
  }
}

async function requireTargetSchema(db: Queryable, targetSchema: string): Promise<void> {
  if ((await existingSchemas(db, [targetSchema])).has(targetSchema)) return
  throw new MigrationError(
    `The target schema ${JSON.stringify(targetSchema)} does not exist. Create it with the shared ` +
      'tables (rowtenancy schema generate --from-schema <a tenant schema> --target-schema ' +
      "<schema> --apply, or the app's migrations), or fix `targetSchema` if it is a typo.",
  )
}

async function requireTenantsTable(db: Queryable, tenantsSchema: string): Promise<TenantIdType> {
  const idType = await existingIdType(db, tenantsSchema)
  if (idType !== undefined) return idType
  throw new MigrationError(
    `There is no ${tenantsSchema}.tenants table. Install it first (rowtenancy init, or ` +
      'installTenantTables(db, { idType })) with the id type of the legacy tenant ids.',
  )
}

/** The tenants of this run, and the schemas of the legacy tenants left out of it. */
function selectTenants(
  discovered: readonly SourceTenant[],
  options: MigrationPlanOptions,
  settings: PlanSettings,
  idType: TenantIdType,
): { tenants: SourceTenant[]; otherSchemas: string[] } {
  const tenants = discovered.filter(
    (t) => t.schema !== settings.targetSchema && t.schema !== settings.tenantsSchema,
  )
  const ids = new Set<string>()
  for (const t of tenants) {
    if (ids.has(t.id))
      throw new MigrationError(`Two legacy tenants have the id ${t.id}; fix the legacy table.`)
    ids.add(t.id)
  }
  if (!options.tenantIds || options.tenantIds.length === 0) {
    if (!options.all)
      throw new MigrationError('Say which tenants to migrate: `all`, or `tenantIds`.')
    return { tenants, otherSchemas: [] }
  }
  const wanted = options.tenantIds.map((raw) => parseTenantId(idType, raw))
  const unknown = wanted.filter((id) => !ids.has(id))
  if (unknown.length > 0) {
    throw new MigrationError(
      `Unknown tenant id ${unknown.map((u) => JSON.stringify(u)).join(', ')}: no legacy tenant has it. ` +
        `Known ids: ${[...ids].slice(0, 20).join(', ')}${ids.size > 20 ? ', ...' : ''}.`,
    )
  }
  return {
    tenants: tenants.filter((t) => wanted.includes(t.id)),
    otherSchemas: tenants.filter((t) => !wanted.includes(t.id)).map((t) => t.schema),
  }
}

type Introspected = ReadonlyMap<string, ReadonlyMap<string, TableInfo>>

/** Every tenant table of this run's tenants, and the ones selected by `models`. */
function selectTables(
  tenants: readonly SourceTenant[],
  introspected: Introspected,
  models: readonly string[] | undefined,
): { allNames: ReadonlySet<string>; selected: string[] } {
  const allNames = new Set<string>()
  for (const t of tenants)
    for (const name of introspected.get(t.schema)?.keys() ?? []) allNames.add(name)
  for (const own of OWN_TABLES) allNames.delete(own)
  if (!models || models.length === 0) return { allNames, selected: [...allNames] }
  const wanted = models.map((m) => ({ model: m, table: resolveModel(m) }))
  const unknown = wanted.filter((w) => !allNames.has(w.table))
  if (unknown.length > 0) {
    throw new MigrationError(
      `Unknown model ${unknown.map((u) => `${JSON.stringify(u.model)} (table ${u.table})`).join(', ')}: ` +
        `no tenant schema has that table. Tenant tables: ${[...allNames].sort().slice(0, 30).join(', ')}.`,
    )
  }
  return { allNames, selected: [...new Set(wanted.map((w) => w.table))] }
}

/** Same-schema foreign keys of the tenant schemas and the target, as `[table, referenced]`. */
function foreignKeyEdges(
  tenants: readonly SourceTenant[],
  introspected: Introspected,
  targets: ReadonlyMap<string, TableInfo>,
  targetSchema: string,
): [string, string][] {
  const edges: [string, string][] = []
  for (const t of tenants) {
    for (const table of introspected.get(t.schema)?.values() ?? []) {
      for (const fk of table.foreignKeys)
        if (fk.refSchema === t.schema) edges.push([table.name, fk.refTable])
    }
  }
  for (const table of targets.values()) {
    for (const fk of table.foreignKeys)
      if (fk.refSchema === targetSchema) edges.push([table.name, fk.refTable])
  }
  return edges
}

/**
 * Tables other tenants have (and the target has, with the tenant column) but no tenant of
 * this run has: still compared, so a tenant schema lacking a whole table is reported as
 * non-blocking drift even when it is migrated alone. Not the target's other tables: the
 * target schema also holds shared, non-tenant tables (`public.customers_domain`).
 */
async function tablesElsewhere(
  db: Queryable,
  otherSchemas: readonly string[],
  allNames: ReadonlySet<string>,
  targets: ReadonlyMap<string, TableInfo>,
  tenantColumn: string,
): Promise<string[]> {
  return [...(await tableNames(db, otherSchemas))]
    .filter(
      (name) =>
        !allNames.has(name) &&
        !OWN_TABLES.has(name) &&
        targets.get(name)?.columns.some((c) => c.name === tenantColumn),
    )
    .sort()
}

function columnTypeOids(introspected: Introspected): string[] {
  return [...introspected.values()].flatMap((tables) =>
    [...tables.values()].flatMap((t) => t.columns.map((c) => c.typeOid ?? '0')),
  )
}

function missingSchemaPlan(tenant: SourceTenant): TenantPlan {
  return {
    tenant,
    blocked: true,
    tables: [],
    allTables: [],
    estimatedRows: 0,
    drift: [
      {
        kind: 'missing-schema',
        blocking: true,
        message: `The schema ${JSON.stringify(tenant.schema)} named for tenant ${tenant.id} does not exist.`,
      },
    ],
  }
}

/** What every tenant's plan is compared against and built from. */
interface PlanContext {
  readonly settings: PlanSettings
  readonly targets: ReadonlyMap<string, TableInfo>
  readonly order: readonly string[]
  readonly elsewhere: readonly string[]
  readonly routines: Awaited<ReturnType<typeof routineDefinitions>>
  readonly types: Awaited<ReturnType<typeof describeTypes>>
  readonly keys: ReadonlyMap<string, RemapKey>
  readonly hidden: RowSecurityHidden
}

/** Per tenant schema, its tables whose rows row-level security filters for this role; and the role. */
interface RowSecurityHidden {
  readonly role: string
  readonly tables: ReadonlyMap<string, ReadonlySet<string>>
}

/**
 * The tables of `schemas` that row-level security applies to for the current role
 * (`row_security_active`: RLS enabled and the role neither owner nor BYPASSRLS, or FORCE
 * ROW LEVEL SECURITY on the owner): their policies would hide rows from the copy, and from
 * the checksums that compare it, so the copy would be a silent subset.
 */
async function rowSecurityHidden(
  db: Queryable,
  schemas: readonly string[],
): Promise<RowSecurityHidden> {
  const { rows } = await db.query(
    `select current_user as role, n.nspname as schema, c.relname as table
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = any($1::text[]) and c.relkind in ('r', 'p') and not c.relispartition
        and c.relrowsecurity and row_security_active(c.oid)
     union all select current_user, null, null`,
    [schemas],
  )
  const tables = new Map<string, Set<string>>()
  for (const r of rows) {
    if (r.schema === null) continue
    const set = tables.get(r.schema) ?? new Set<string>()
    set.add(r.table)
    tables.set(r.schema, set)
  }
  return { role: rows[0].role, tables }
}

function tenantPlan(
  tenant: SourceTenant,
  source: ReadonlyMap<string, TableInfo>,
  context: PlanContext,
): TenantPlan {
  const { settings, targets, order, routines } = context
  const { targetSchema, tenantColumn, idStrategy } = settings
  const drift = [
    ...compareWithTarget(
      source,
      targets,
      [...order, ...context.elsewhere],
      targetSchema,
      tenantColumn,
      context.types,
    ),
    ...routineDifferences(
      routines.get(tenant.schema) ?? new Map(),
      routines.get(targetSchema) ?? new Map(),
      targetSchema,
      tenant.schema,
    ),
  ]
  const remap =
    idStrategy === 'remap'
      ? remapTables(source, targets, context.keys, targetSchema, tenantColumn, context.types)
      : undefined
  const tables: TablePlan[] = []
  for (const name of order) {
    const src = source.get(name)
    const tgt = targets.get(name)
    if (!src || !tgt?.columns.some((c) => c.name === tenantColumn)) continue
    const { plan, issues } = tablePlan(src, tgt, remap?.get(name), context.types)
    drift.push(...issues)
    if (context.hidden.tables.get(tenant.schema)?.has(name)) {
      drift.push({
        kind: 'row-security',
        table: name,
        blocking: true,
        message:
          `Row-level security hides rows of ${tenant.schema}.${name} from role ${context.hidden.role}: the copy would miss them. ` +
          "Run the migration as the tables' owner (without FORCE ROW LEVEL SECURITY), a superuser or a BYPASSRLS role.",
      })
    }
    tables.push(plan)
  }
  return {
    tenant,
    drift,
    blocked: drift.some((d) => d.blocking),
    tables,
    allTables: [...source.keys()].filter((n) => !OWN_TABLES.has(n)),
    estimatedRows: tables.reduce((n, t) => n + t.source.estimatedRows, 0),
  }
}

/**
 * The source columns whose type differs from the target's, each with the target type, and
 * those of them PostgreSQL's own cast widens exactly.
 */
function castsTo(
  src: TableInfo,
  tcols: ReadonlyMap<string, TableInfo['columns'][number]>,
  types: TypeCatalog | undefined,
): { casts: Map<string, string>; directCasts: Set<string> } {
  const casts = new Map<string, string>()
  const directCasts = new Set<string>()
  for (const c of src.columns) {
    const t = tcols.get(c.name)
    if (!t) continue
    const same =
      t.typeOid !== undefined
        ? t.typeOid === c.typeOid && t.typeMod === c.typeMod
        : t.type === c.type
    if (same) continue
    casts.set(c.name, t.type)
    if (types && c.typeOid !== undefined && t.typeOid !== undefined) {
      if (castsDirectly(types, c.typeOid, t.typeOid)) directCasts.add(c.name)
    }
  }
  return { casts, directCasts }
}

/** One table's copy plan, and the keys remap cannot rewrite (blocking drift). */
function tablePlan(
  src: TableInfo,
  tgt: TableInfo,
  remap: TableRemap | undefined,
  types: TypeCatalog | undefined,
): { plan: TablePlan; issues: readonly DriftIssue[] } {
  const tcols = new Map(tgt.columns.map((c) => [c.name, c]))
  const columns = src.columns.filter((c) => tcols.has(c.name)).map((c) => c.name)
  const insertColumns = columns.filter((c) => !tcols.get(c)!.generated)
  const { casts, directCasts } = castsTo(src, tcols, types)
  const overriding = insertColumns.some((c) => tcols.get(c)!.identity === 'a')
  const remapColumns = new Map<string, RemapColumn>(
    [...(remap?.columns ?? [])].filter(([c]) => tcols.has(c)),
  )
  const key = remap?.key
  const plan: TablePlan = {
    name: src.name,
    source: src,
    target: tgt,
    columns,
    insertColumns,
    casts,
    directCasts,
    overriding,
    remapColumns,
    ...(key ? { remapAllocation: key, remapKey: key.column } : {}),
    ...(key?.sequence ? { remapSequence: key.sequence } : {}),
  }
  return { plan, issues: remap?.issues ?? [] }
}
