import { InvalidInputError } from '../../errors/index.js'
import type {
  CheckDef,
  ExclusionDef,
  ForeignKeyDef,
  IndexDef,
  KeyDef,
  TableDef,
  TemplateSchema,
} from '../../sql/catalog/model.js'
import { DEFAULTS } from '../../sql/defaults.js'
import { quoteIdent } from '../../sql/quote.js'
import { assertTenantIdType, type TenantIdType } from '../../tenants/id-types.js'
import { cyclicEdges } from './foreign-key-cycles.js'
import type { TenantSchemaPlan } from './model.js'

/**
 * Where the tenant-aware tables go and how their tenant column looks.
 */
export interface TenantSchemaPlanOptions {
  /** The schema of the shared tables; `public` by default. */
  readonly targetSchema?: string | undefined
  /** The type of `tenants.id` and every tenant column; `bigint` by default. */
  readonly tenantIdType?: TenantIdType | undefined
  /** The tenant column; `tenant_id` by default. */
  readonly tenantColumn?: string | undefined
  /** The schema of the `tenants` table; `public` by default. */
  readonly tenantsSchema?: string | undefined
}

/** @deprecated Renamed to {@link TenantSchemaPlanOptions} (`PlanOptions` of `rowtenancy/migrate` is another thing); this alias goes in the next release. */
export type PlanOptions = TenantSchemaPlanOptions

const NAME = (name: string) => JSON.stringify(name)

/**
 * Turns a template schema into the tenant-aware plan: the tenant column first
 * (`NOT NULL REFERENCES <tenants schema>.tenants (id)`), primary keys, unique
 * constraints, exclusion constraints and indexes led by it, foreign keys between
 * template tables as `(tenant_id, x) -> (tenant_id, y)` (`DEFERRABLE INITIALLY
 * DEFERRED` when they close a cycle or reference their own table), foreign keys
 * into other schemas kept as they are. Pure: no database.
 *
 * @example
 * ```ts
 * const plan = planTenantSchema(await introspectTemplate(pool, 'tenant_1'), { tenantIdType: 'bigint' })
 * plan.tables.find((t) => t.name === 'books')?.primaryKey?.columns // ['tenant_id', 'id']
 * ```
 */
export function planTenantSchema(
  template: TemplateSchema,
  options: TenantSchemaPlanOptions = {},
): TenantSchemaPlan {
  const settings = planSettings(options)
  refuseTemplate(template, settings)
  const local = (fk: ForeignKeyDef) => fk.refSchema === template.schema
  const edges = template.tables.flatMap((t) =>
    t.foreignKeys.filter(local).map((fk) => ({ from: t.name, to: fk.refTable, fk })),
  )
  const deferred = new Set([...cyclicEdges(edges)].map((i) => edges[i]!.fk))
  const planned = orderParentsFirst(template.tables).map((t) =>
    tenantTable(t, template, settings, deferred),
  )
  return {
    templateSchema: template.schema,
    targetSchema: settings.targetSchema,
    tenantColumn: settings.tenantColumn,
    tenantIdType: settings.tenantIdType,
    tenantsTable: { schema: settings.tenantsSchema, table: 'tenants' },
    tables: planned.map((p) => p.table),
    enums: template.enums,
    domains: template.domains,
    ...(template.compositeTypes ? { compositeTypes: template.compositeTypes } : {}),
    sequences: template.sequences,
    deferredForeignKeys: [...deferred].map((fk) => fk.name),
    notes: [...template.notes, ...planned.flatMap((p) => p.notes)],
  }
}

interface PlanSettings {
  readonly tenantIdType: TenantIdType
  readonly targetSchema: string
  readonly tenantColumn: string
  readonly tenantsSchema: string
}

/** The options with their defaults, checked (id type, names that can be quoted). */
function planSettings(options: TenantSchemaPlanOptions): PlanSettings {
  const tenantIdType = options.tenantIdType ?? DEFAULTS.tenantIdType
  assertTenantIdType(tenantIdType)
  const targetSchema = options.targetSchema ?? DEFAULTS.schema
  const tenantColumn = options.tenantColumn ?? DEFAULTS.tenantColumn
  const tenantsSchema = options.tenantsSchema ?? DEFAULTS.schema
  for (const name of [targetSchema, tenantColumn, tenantsSchema]) quoteIdent(name)
  return { tenantIdType, targetSchema, tenantColumn, tenantsSchema }
}

/** Refuses a template that cannot be generated from: empty, the target itself, or colliding names. */
function refuseTemplate(template: TemplateSchema, settings: PlanSettings): void {
  const { targetSchema, tenantColumn, tenantsSchema } = settings
  if (template.tables.length === 0) {
    throw new InvalidInputError(
      `The template schema ${NAME(template.schema)} has no tables. Pass the schema of a legacy ` +
        'tenant that holds the tenant tables.',
    )
  }
  if (targetSchema === template.schema) {
    throw new InvalidInputError(
      `The target schema and the template schema are both ${NAME(targetSchema)}. ` +
        'Pick another `targetSchema` (public by default): the template is never altered.',
    )
  }
  for (const table of template.tables) {
    if (table.columns.some((c) => c.name === tenantColumn)) {
      throw new InvalidInputError(
        `The template table ${NAME(table.name)} already has a column ${NAME(tenantColumn)}. ` +
          'Rename it in the template or choose another `tenantColumn`.',
      )
    }
    if (targetSchema === tenantsSchema && ['tenants', 'tenant_domains'].includes(table.name)) {
      throw new InvalidInputError(
        `The template table ${NAME(table.name)} would collide with rowtenancy's own table ` +
          `${NAME(tenantsSchema)}.${NAME(table.name)}. Generate into another \`targetSchema\`.`,
      )
    }
  }
}

/** One template table made tenant-aware, and the notes about it. */
function tenantTable(
  t: TableDef,
  template: TemplateSchema,
  settings: PlanSettings,
  deferred: ReadonlySet<ForeignKeyDef>,
): { table: TableDef; notes: string[] } {
  const { tenantColumn, tenantIdType, tenantsSchema, targetSchema } = settings
  const notes: string[] = []
  const extraChecks: CheckDef[] = []
  const q = quoteIdent(tenantColumn)
  const lead = (cols: readonly string[]) => [tenantColumn, ...cols]
  const leadKey = (k: KeyDef): KeyDef => ({ ...k, columns: lead(k.columns) })
  const foreignKeys = t.foreignKeys.map((fk) => {
    if (fk.refSchema !== template.schema) {
      if (fk.refSchema !== 'public') {
        notes.push(
          `Foreign key ${NAME(fk.name)} on ${NAME(t.name)} references ${NAME(fk.refSchema)}.` +
            `${NAME(fk.refTable)}, outside the template: kept as it is.`,
        )
      }
      return fk
    }
    return tenantForeignKey(t.name, fk, deferred.has(fk), targetSchema, lead, extraChecks, notes)
  })
  if (!t.primaryKey && !t.partitionOf) {
    notes.push(
      `Table ${NAME(t.name)} has no primary key in the template, so it gets none; ` +
        `add one led by ${NAME(tenantColumn)} if rows must be addressable.`,
    )
  }
  if (t.partitionKey) {
    notes.push(
      `Table ${NAME(t.name)} stays partitioned by ${t.partitionKey} with the same partitions; ` +
        `${NAME(tenantColumn)} leads its keys but is not added to the partition key ` +
        '(its keys already hold the partition columns; Citus distributes by the tenant column).',
    )
  }
  const tenantCol = {
    name: tenantColumn,
    type: tenantIdType,
    notNull: true,
    references: { schema: tenantsSchema, table: 'tenants', column: 'id' },
  }
  const table: TableDef = {
    ...t,
    columns: t.partitionOf ? t.columns : [tenantCol, ...t.columns],
    primaryKey: t.primaryKey && leadKey(t.primaryKey),
    uniques: t.uniques.map(leadKey),
    checks: [...t.checks, ...extraChecks],
    exclusions: t.exclusions.map((x) => tenantExclusion(t.name, x, q, template, notes)),
    foreignKeys,
    indexes: t.indexes.map((i) => tenantIndex(t.name, i, q, template, notes)),
  }
  return { table, notes }
}

function tenantForeignKey(
  table: string,
  fk: ForeignKeyDef,
  inCycle: boolean,
  targetSchema: string,
  lead: (cols: readonly string[]) => string[],
  checks: CheckDef[],
  notes: string[],
): ForeignKeyDef {
  const setsColumns = fk.onDelete === 'SET NULL' || fk.onDelete === 'SET DEFAULT'
  if (fk.onUpdate === 'SET NULL' || fk.onUpdate === 'SET DEFAULT') {
    notes.push(
      `Foreign key ${NAME(fk.name)} on ${NAME(table)} has ON UPDATE ${fk.onUpdate}, which would ` +
        'also reset the tenant column; it fails if a referenced key changes. Prefer ON UPDATE CASCADE.',
    )
  }
  if (fk.match === 'FULL' && fk.columns.length > 1) {
    // MATCH FULL with the never-null tenant column would reject every null key;
    // keep "all or none null" for the original columns as a check instead.
    const isNull = fk.columns.map((c) => `${quoteIdent(c)} IS NULL`).join(' AND ')
    const notNull = fk.columns.map((c) => `${quoteIdent(c)} IS NOT NULL`).join(' AND ')
    checks.push({
      name: fitName(fk.name, '_match_full'),
      definition: `CHECK (((${isNull}) OR (${notNull})))`,
    })
  }
  return {
    ...fk,
    columns: lead(fk.columns),
    refColumns: lead(fk.refColumns),
    refSchema: targetSchema,
    // ON DELETE SET NULL on the whole key would null the tenant column too.
    onDeleteColumns:
      setsColumns && fk.onDeleteColumns.length === 0 ? fk.columns : fk.onDeleteColumns,
    match: 'SIMPLE',
    deferrable: fk.deferrable || inCycle,
    initiallyDeferred: fk.initiallyDeferred || inCycle,
  }
}

function tenantIndex(
  table: string,
  index: IndexDef,
  q: string,
  template: TemplateSchema,
  notes: string[],
): IndexDef {
  const where = `Index ${NAME(index.name)} on ${NAME(table)}`
  switch (index.method) {
    case 'btree':
    case 'brin':
      return { ...index, tail: `${q}, ${index.tail}` }
    case 'hash':
      notes.push(
        `${where} was a hash index (one column only); it becomes a btree index led by ${q}.`,
      )
      return { ...index, method: 'btree', tail: `${q}, ${index.tail}` }
    case 'gin':
    case 'gist': {
      const ext = index.method === 'gin' ? 'btree_gin' : 'btree_gist'
      if (index.method === 'gin' ? template.extensions.btreeGin : template.extensions.btreeGist) {
        return { ...index, tail: `${q}, ${index.tail}` }
      }
      notes.push(
        `${where} (${index.method}) does not lead with ${q}: it needs the ${ext} extension. ` +
          `Pass --install-extensions (installExtensions: true) and schema generate creates ${ext} ` +
          'with the tables, in the same transaction.',
      )
      return index
    }
    default:
      notes.push(`${where} (${index.method}) is kept as it is, without ${q}.`)
      return index
  }
}

function tenantExclusion(
  table: string,
  x: ExclusionDef,
  q: string,
  template: TemplateSchema,
  notes: string[],
): ExclusionDef {
  if (x.method === 'gist' && template.extensions.btreeGist) {
    return { ...x, tail: `${q} WITH =, ${x.tail}` }
  }
  notes.push(
    `Exclusion constraint ${NAME(x.name)} on ${NAME(table)} is kept without ${q}, so it ` +
      'applies across tenants: it needs the btree_gist extension to be scoped per tenant. Pass ' +
      '--install-extensions (installExtensions: true) and schema generate creates btree_gist with the tables.',
  )
  return x
}

/** Partitions after their parents; otherwise the template's (name) order. */
function orderParentsFirst(tables: readonly TableDef[]): TableDef[] {
  const byName = new Map(tables.map((t) => [t.name, t]))
  const out: TableDef[] = []
  const seen = new Set<string>()
  const visit = (t: TableDef) => {
    if (seen.has(t.name)) return
    seen.add(t.name)
    const parent = t.partitionOf && byName.get(t.partitionOf.parent)
    if (parent) visit(parent)
    out.push(t)
  }
  for (const t of tables) visit(t)
  return out
}

/**
 * `base + suffix`, cutting `base` so the whole fits PostgreSQL's 63 bytes.
 *
 * @example
 * ```ts
 * fitName('books_author_fkey', '_match_full') // 'books_author_fkey_match_full'
 * ```
 * @internal
 */
export function fitName(base: string, suffix: string): string {
  let cut = base
  while (Buffer.byteLength(cut + suffix, 'utf8') > 63) cut = [...cut].slice(0, -1).join('')
  return cut + suffix
}
