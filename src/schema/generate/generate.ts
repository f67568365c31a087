import { ConfigError, InvalidInputError, MigrationError } from '../../errors/index.js'
import { introspectTemplate, readSchemaInTransaction } from '../../sql/catalog/index.js'
import type { TableDef, TemplateSchema } from '../../sql/catalog/model.js'
import { readRoutinesInTransaction } from '../../sql/catalog/read-routines.js'
import { DEFAULTS } from '../../sql/defaults.js'
import { inTransaction, type Queryable } from '../../sql/queryable.js'
import { quoteIdent } from '../../sql/quote.js'
import { assertTenantIdType } from '../../tenants/id-types.js'
import { existingIdType } from '../../tenants/install.js'
import type { TenantSchemaPlan } from './model.js'
import { planTenantSchema, type TenantSchemaPlanOptions } from './plan.js'
import { type RenderOptions, renderTenantSchema } from './render.js'
import { renderRoutines } from './routines.js'
import { tableDifferences } from './table-differences.js'
import { withUuidV7Keys } from './uuid-v7.js'

/**
 * Options of {@link generateTenantSchema} and {@link applyTenantSchema}.
 */
export interface GenerateOptions extends TenantSchemaPlanOptions, RenderOptions {
  /**
   * Create `btree_gin` / `btree_gist` (IF NOT EXISTS, first in the statements) when an index
   * or exclusion constraint needs one to lead with the tenant column; false by default
   * (the index then keeps its shape, with a note).
   */
  readonly installExtensions?: boolean | undefined
  /** The template schema: one legacy tenant's schema. */
  readonly fromSchema: string
}

/**
 * The generated target: the plan, its SQL as single statements, and notes on
 * what could not be carried over as it was.
 *
 * @example
 * ```ts
 * const { statements, notes } = await generateTenantSchema(pool, { fromSchema: 'tenant_1' })
 * ```
 */
export interface GeneratedSchema {
  readonly plan: TenantSchemaPlan
  readonly statements: readonly string[]
  readonly notes: readonly string[]
}

/**
 * What {@link applyTenantSchema} did: `created` the tables, or found them all
 * present and matching (`up-to-date`, nothing run).
 *
 * @example
 * ```ts
 * const { status } = await applyTenantSchema(pool, { fromSchema: 'tenant_1' }) // 'created'
 * ```
 */
export interface AppliedSchema extends GeneratedSchema {
  readonly status: 'created' | 'up-to-date'
}

/**
 * Reads the template schema from the live catalog and generates the DDL of the
 * shared tenant-aware tables (see `planTenantSchema` for the rules). Changes
 * nothing in the database.
 *
 * @example
 * ```ts
 * const { statements } = await generateTenantSchema(pool, { fromSchema: 'tenant_1', tenantIdType: 'uuid' })
 * console.log(statements.join(';\n'))
 * ```
 */
export async function generateTenantSchema(
  db: Queryable,
  options: GenerateOptions,
): Promise<GeneratedSchema> {
  checkOptions(options)
  const read = await introspectTemplate(db, options.fromSchema)
  const missing = missingExtensions(read)
  const install = options.installExtensions === true ? missing : []
  // With installExtensions, plan as if they were there: the statements create them first.
  const template =
    install.length > 0 ? { ...read, extensions: { btreeGin: true, btreeGist: true } } : read
  const planned = planTenantSchema(template, options)
  const plan = options.uuidV7Keys ? withUuidV7Keys(planned) : planned
  const routines = renderRoutines(
    await inTransaction(db, async (tx) => {
      await tx.query('set transaction read only')
      return readRoutinesInTransaction(tx, options.fromSchema)
    }),
    plan.targetSchema,
  )
  const statements = renderTenantSchema(plan, options)
  // After `SET LOCAL search_path`: the extension goes into the target schema.
  statements.splice(1, 0, ...install.map((e) => `CREATE EXTENSION IF NOT EXISTS ${e}`))
  // Functions before the first table (defaults and checks may call them); views and triggers last.
  const firstTable = statements.findIndex((s) => s.startsWith('CREATE TABLE'))
  statements.splice(firstTable < 0 ? statements.length : firstTable, 0, ...routines.before)
  statements.push(...routines.after)
  return { plan, statements, notes: [...plan.notes, ...routines.notes] }
}

/**
 * Generates the tenant-aware tables and creates them in ONE transaction (all or
 * nothing). Idempotent: when every table already exists and matches, it does
 * nothing and says `up-to-date`; when some exist and differ (or only some
 * exist), it refuses with a `MigrationError` naming them and creates nothing.
 * Needs the `tenants` table (with the same id type) to exist.
 *
 * @example
 * ```ts
 * await installTenantTables(pool, { idType: 'bigint' })
 * const { status } = await applyTenantSchema(pool, { fromSchema: 'tenant_1' }) // 'created'
 * await applyTenantSchema(pool, { fromSchema: 'tenant_1' }) // status 'up-to-date'
 * ```
 */
export async function applyTenantSchema(
  db: Queryable,
  options: GenerateOptions,
): Promise<AppliedSchema> {
  const generated = await generateTenantSchema(db, options)
  const { plan, statements } = generated
  const status = await inTransaction(db, async (tx) => {
    await tx.query("select pg_advisory_xact_lock(hashtext('rowtenancy.schema-generate'))")
    await checkTenantsTable(tx, plan)
    if (await isUpToDate(tx, plan)) return 'up-to-date' as const
    await checkTypes(tx, plan)
    for (const [i, statement] of statements.entries()) {
      try {
        await tx.query(statement)
      } catch (err) {
        throw new MigrationError(
          `Creating the tenant-aware tables failed at statement ${i + 1} of ${statements.length} ` +
            `(${(err as Error).message}); nothing was created. The statement: ${statement}`,
          { cause: err },
        )
      }
    }
    return 'created' as const
  })
  return { ...generated, status }
}

/** The btree_gin / btree_gist extensions the template's indexes and exclusions need and the database lacks. */
function missingExtensions(t: TemplateSchema): string[] {
  const methods = new Set(
    t.tables.flatMap((x) => [
      ...x.indexes.map((i) => i.method),
      ...x.exclusions.map((e) => e.method),
    ]),
  )
  const out: string[] = []
  if (methods.has('gin') && !t.extensions.btreeGin) out.push('btree_gin')
  if (methods.has('gist') && !t.extensions.btreeGist) out.push('btree_gist')
  return out
}

function checkOptions(options: GenerateOptions): void {
  if (typeof options?.fromSchema !== 'string' || options.fromSchema.length === 0) {
    throw new InvalidInputError(
      'Name the template schema (one legacy tenant schema) as `fromSchema`.',
    )
  }
  assertTenantIdType(options.tenantIdType ?? DEFAULTS.tenantIdType)
  for (const name of [
    options.fromSchema,
    options.targetSchema,
    options.tenantColumn,
    options.tenantsSchema,
  ]) {
    if (name !== undefined) quoteIdent(name)
  }
  // PostgreSQL's own schemas: a template there "generates" thousands of catalog views and
  // functions; a target there cannot hold tenant tables.
  for (const [option, name] of [
    ['fromSchema', options.fromSchema],
    ['targetSchema', options.targetSchema],
  ] as const) {
    if (name !== undefined && (/^pg_/i.test(name) || name.toLowerCase() === 'information_schema')) {
      throw new InvalidInputError(
        `\`${option}\` ${JSON.stringify(name)} is a PostgreSQL system schema. ` +
          (option === 'fromSchema'
            ? 'Pass the schema of one legacy tenant (e.g. tenant_1) as the template.'
            : 'Pick the schema of the shared tables (public by default).'),
      )
    }
  }
}

async function checkTenantsTable(tx: Queryable, plan: TenantSchemaPlan): Promise<void> {
  const { schema } = plan.tenantsTable
  const idType = await existingIdType(tx, schema)
  if (idType === undefined) {
    throw new ConfigError(
      `The tenants table ${quoteIdent(schema)}."tenants" does not exist, and every tenant_id ` +
        'references it. Install it first with `rowtenancy init` (or installTenantTables), ' +
        'or point `tenantsSchema` at the schema that holds it.',
    )
  }
  if (idType !== plan.tenantIdType) {
    throw new ConfigError(
      `${schema}.tenants.id is ${idType}, but the tenant column would be ${plan.tenantIdType}. ` +
        `Set \`tenantIdType\` to ${idType}.`,
    )
  }
}

/** True when all tables exist and match; throws when some exist and others are missing or differ. */
async function isUpToDate(tx: Queryable, plan: TenantSchemaPlan): Promise<boolean> {
  const names = plan.tables.map((t) => t.name)
  const taken = await tx.query(
    `select c.relname as name, c.relkind in ('r', 'p') as is_table from pg_class c
       join pg_namespace n on n.oid = c.relnamespace where n.nspname = $1 and c.relname = any($2)`,
    [plan.targetSchema, names],
  )
  if (taken.rows.length === 0) return false
  const where = `in the target schema ${JSON.stringify(plan.targetSchema)}`
  const others = taken.rows.filter((r) => !r.is_table).map((r) => JSON.stringify(r.name))
  if (others.length > 0) {
    throw new MigrationError(
      `Relations that are not tables already use the names ${others.join(', ')} ${where}. ` +
        'Rename or drop them, or generate into another `targetSchema`. Nothing was created.',
    )
  }
  const actual = await readSchemaInTransaction(tx, plan.targetSchema, names)
  const byName = new Map<string, TableDef>(actual.tables.map((t) => [t.name, t]))
  const problems: string[] = []
  for (const t of plan.tables) {
    const existing = byName.get(t.name)
    if (existing) problems.push(...tableDifferences(t, existing))
  }
  const missing = plan.tables.filter((t) => !byName.has(t.name))
  if (problems.length === 0 && missing.length === 0) return true
  const list = (names: string[]) => names.map((n) => JSON.stringify(n)).join(', ')
  throw new MigrationError(
    `${byName.size} of ${names.length} tables already exist ${where} ` +
      `(${list([...byName.keys()])})` +
      (problems.length > 0 ? ` and do not match the template: ${problems.join('; ')}` : '') +
      (missing.length > 0 ? `; missing: ${list(missing.map((t) => t.name))}` : '') +
      '. Refusing to overwrite them: drop or fix them (or use another `targetSchema`) and run ' +
      'again. Nothing was created.',
  )
}

/** An existing enum or domain of the same name must be the same type. */
async function checkTypes(tx: Queryable, plan: TenantSchemaPlan): Promise<void> {
  const { rows } = await tx.query(
    `select t.typname as name, t.typtype as kind, format_type(t.typbasetype, t.typtypmod) as base,
            array(select e.enumlabel::text from pg_enum e where e.enumtypid = t.oid
                   order by e.enumsortorder) as labels
       from pg_type t join pg_namespace n on n.oid = t.typnamespace
      where n.nspname = $1 and t.typname = any($2)`,
    [plan.targetSchema, [...plan.enums, ...plan.domains].map((t) => t.name)],
  )
  const problems: string[] = []
  for (const row of rows) {
    const e = plan.enums.find((x) => x.name === row.name)
    const d = plan.domains.find((x) => x.name === row.name)
    if (e && (row.kind !== 'e' || JSON.stringify(row.labels) !== JSON.stringify(e.labels))) {
      problems.push(
        `type ${JSON.stringify(e.name)} exists but is not the enum (${e.labels.join(', ')})`,
      )
    }
    if (d && (row.kind !== 'd' || row.base !== d.baseType)) {
      problems.push(`type ${JSON.stringify(d.name)} exists but is not a domain over ${d.baseType}`)
    }
  }
  if (problems.length > 0) {
    throw new MigrationError(
      `In the target schema ${JSON.stringify(plan.targetSchema)}, ${problems.join('; ')}. ` +
        'Rename or drop the existing type, or use another `targetSchema`. Nothing was created.',
    )
  }
}
