import type { ColumnDef, EnumDef, ForeignKeyDef, TableDef } from '../../sql/catalog/model.js'
import type { EmitOptions } from './emit-drizzle.js'
import { camelName, NameScope, pascalName, quoted } from './emit-names.js'
import type { TenantSchemaPlan } from './model.js'

interface ModelNames {
  readonly model: string
  readonly fields: Map<string, string>
  readonly scope: NameScope
}

/**
 * The Prisma models (Prisma 7 schema language) of a generated tenant schema:
 * one model per shared table, mapped to it (`@@map`, `@map`), with the tenant
 * column, the composite id `@@id([tenantId, id])`, unique constraints,
 * plain-column indexes, and relations through the tenant-paired foreign keys
 * (`fields: [tenantId, accountId], references: [tenantId, id]`, named after the
 * constraint, both sides). Types Prisma has no scalar for are `Unsupported(...)`;
 * defaults it cannot express are `dbgenerated(...)`. The RLS policies stay in
 * the SQL (Prisma does not model them): the `options` only matter for the header.
 *
 * @example
 * ```ts
 * const models = emitPrismaModels(generated.plan) // model Accounts { tenantId BigInt @map("tenant_id") ...
 * ```
 */
export function emitPrismaModels(plan: TenantSchemaPlan, options: EmitOptions = {}): string {
  const scope = new NameScope()
  // Partitions are reached through their parent table.
  const tables = plan.tables.filter((t) => t.partitionOf === undefined)
  const enums = new Map(plan.enums.map((e) => [e.name, scope.take(`${pascalName(e.name)}Enum`)]))
  const models = new Map(tables.map((t) => [t.name, modelNames(t, scope.take(pascalName(t.name)))]))
  const relations = prismaRelations(tables, models, plan)
  const out = [
    `// rowtenancy schema generate --emit prisma: template ${quoted(plan.templateSchema)} -> ${quoted(plan.targetSchema)}`,
    '// Models of the shared tables (add them to schema.prisma). The tables, keys, indexes' +
      (options.rls === false ? '' : ' and RLS policies') +
      ' come from the SQL of `schema generate`, not from prisma migrate.',
    '',
    ...plan.enums.flatMap((e) => enumBlock(e, enums)),
    ...tables.flatMap((t) =>
      modelBlock(t, models.get(t.name)!, relations.get(t.name) ?? [], enums),
    ),
  ]
  return `${out.join('\n').trimEnd()}\n`
}

/** The model name of a table and the field of each of its columns. */
function modelNames(table: TableDef, model: string): ModelNames {
  const fields = new NameScope()
  return {
    model,
    fields: new Map(table.columns.map((c) => [c.name, fields.take(camelName(c.name))])),
    scope: fields,
  }
}

/**
 * The relation fields of each table, both sides of each foreign key inside the
 * target schema; their names are taken from the models' field scopes.
 */
function prismaRelations(
  tables: readonly TableDef[],
  models: ReadonlyMap<string, ModelNames>,
  plan: TenantSchemaPlan,
): Map<string, string[]> {
  const relations = new Map<string, string[]>()
  const push = (table: string, line: string) => {
    relations.set(table, [...(relations.get(table) ?? []), line])
  }
  for (const t of tables) {
    const from = models.get(t.name)!
    for (const fk of t.foreignKeys) {
      const to = models.get(fk.refTable)
      if (!to || fk.refSchema !== plan.targetSchema) continue
      const own = fk.columns.filter((c) => c !== plan.tenantColumn)
      const base = camelName(
        (own.length === 1 ? own[0]! : fk.refTable).replace(/_?id$/i, '') || fk.refTable,
      )
      const oneField = from.scope.take(base)
      const optional = fk.columns.some((c) => !t.columns.find((x) => x.name === c)?.notNull)
      push(
        t.name,
        `  ${oneField} ${to.model}${optional ? '?' : ''} @relation(${quoted(fk.name)}, fields: [${fk.columns
          .map((c) => from.fields.get(c))
          .join(
            ', ',
          )}], references: [${fk.refColumns.map((c) => to.fields.get(c)).join(', ')}]${actions(fk)})`,
      )
      const manyField = to.scope.take(camelName(t.name))
      push(fk.refTable, `  ${manyField} ${from.model}[] @relation(${quoted(fk.name)})`)
    }
  }
  return relations
}

/** The `enum` block of one enum type. */
function enumBlock(e: EnumDef, enums: ReadonlyMap<string, string>): string[] {
  const labels = new NameScope()
  return [
    `enum ${enums.get(e.name)} {`,
    ...e.labels.map((label) => `  ${labels.take(camelName(label))} @map(${quoted(label)})`),
    `  @@map(${quoted(e.name)})`,
    '}',
    '',
  ]
}

/** The `model` block of one table: fields, relations, then id, uniques, indexes and map. */
function modelBlock(
  t: TableDef,
  m: ModelNames,
  relations: readonly string[],
  enums: ReadonlyMap<string, string>,
): string[] {
  const f = (cols: readonly string[]) => `[${cols.map((c) => m.fields.get(c)).join(', ')}]`
  const keyed =
    t.primaryKey !== undefined ||
    t.uniques.some((u) =>
      u.columns.every((c) => t.columns.find((x) => x.name === c)?.notNull === true),
    )
  return [
    `model ${m.model} {`,
    ...t.columns.map((c) => `  ${m.fields.get(c.name)} ${fieldType(c, enums)}`),
    ...relations,
    '',
    ...(t.primaryKey
      ? [`  @@id(${f(t.primaryKey.columns)}, map: ${quoted(t.primaryKey.name)})`]
      : []),
    ...t.uniques.map((u) => `  @@unique(${f(u.columns)}, map: ${quoted(u.name)})`),
    ...t.indexes.map((i) =>
      i.method !== 'btree' || i.tail !== '' || !i.keys.every((k) => m.fields.has(k))
        ? `  // index ${oneLine(i.name)}: ${i.method}, expression or partial: kept in the SQL`
        : `  @@${i.unique ? 'unique' : 'index'}(${f(i.keys)}, map: ${quoted(i.name)})`,
    ),
    // Prisma needs a unique criterion of required fields; without one the model is ignored.
    ...(keyed ? [] : ['  @@ignore']),
    `  @@map(${quoted(t.name)})`,
    '}',
    '',
  ]
}

function fieldType(c: ColumnDef, enums: ReadonlyMap<string, string>): string {
  let type = c.type
  let list = false
  if (type.endsWith('[]')) {
    type = type.slice(0, -2)
    list = true
  }
  const [scalar, native] = scalarOf(type, enums)
  let s = `${scalar}${list ? '[]' : c.notNull ? '' : '?'}`
  if (native) s += ` ${native}`
  if (c.identity) s += ' @default(autoincrement())'
  else if (c.generated) s += ` @default(dbgenerated(${quoted(c.generated)}))`
  else if (c.default !== undefined) s += ` @default(${defaultOf(c.default, scalar)})`
  s += ` @map(${quoted(c.name)})`
  return s
}

function scalarOf(type: string, enums: ReadonlyMap<string, string>): [string, string | undefined] {
  const enumName = enums.get(type.replace(/^.*\./, '').replace(/^"|"$/g, ''))
  if (enumName) return [enumName, undefined]
  switch (type) {
    case 'bigint':
      return ['BigInt', undefined]
    case 'integer':
      return ['Int', undefined]
    case 'smallint':
      return ['Int', '@db.SmallInt']
    case 'text':
      return ['String', undefined]
    case 'boolean':
      return ['Boolean', undefined]
    case 'uuid':
      return ['String', '@db.Uuid']
    case 'jsonb':
      return ['Json', undefined]
    case 'json':
      return ['Json', '@db.Json']
    case 'date':
      return ['DateTime', '@db.Date']
    case 'double precision':
      return ['Float', undefined]
    case 'real':
      return ['Float', '@db.Real']
    case 'bytea':
      return ['Bytes', undefined]
    case 'timestamp with time zone':
      return ['DateTime', '@db.Timestamptz']
    case 'timestamp without time zone':
      return ['DateTime', '@db.Timestamp']
  }
  const varchar = /^character varying\((\d+)\)$/.exec(type)
  if (varchar) return ['String', `@db.VarChar(${varchar[1]})`]
  const numeric = /^numeric\((\d+),(\d+)\)$/.exec(type)
  if (numeric) return ['Decimal', `@db.Decimal(${numeric[1]}, ${numeric[2]})`]
  if (type === 'numeric') return ['Decimal', undefined]
  return [`Unsupported(${quoted(type)})`, undefined]
}

function defaultOf(expr: string, scalar: string): string {
  if (/^nextval\(/i.test(expr)) return 'autoincrement()'
  if (/^(now\(\)|CURRENT_TIMESTAMP)$/i.test(expr)) return 'now()'
  if (/^(true|false)$/.test(expr) && scalar === 'Boolean') return expr
  if (/^-?\d+(\.\d+)?$/.test(expr) && /^(Int|BigInt|Float|Decimal)$/.test(scalar)) return expr
  const text = /^'((?:[^']|'')*)'::text$/.exec(expr)
  if (text && scalar === 'String') return quoted(text[1]!.replace(/''/g, "'"))
  return `dbgenerated(${quoted(expr)})`
}

function actions(fk: ForeignKeyDef): string {
  const map: Record<ForeignKeyDef['onDelete'], string> = {
    'NO ACTION': 'NoAction',
    RESTRICT: 'Restrict',
    CASCADE: 'Cascade',
    'SET NULL': 'SetNull',
    'SET DEFAULT': 'SetDefault',
  }
  let s = ''
  if (fk.onDelete !== 'NO ACTION') s += `, onDelete: ${map[fk.onDelete]}`
  if (fk.onUpdate !== 'NO ACTION') s += `, onUpdate: ${map[fk.onUpdate]}`
  return s
}

function oneLine(text: string): string {
  return text.replace(/[\r\n\u2028\u2029]+/g, ' ')
}
