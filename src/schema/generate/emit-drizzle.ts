import type { ColumnDef, ForeignKeyDef, TableDef } from '../../sql/catalog/model.js'
import { camelName, NameScope, quoted } from './emit-names.js'
import type { TenantSchemaPlan } from './model.js'

/**
 * Options of {@link emitDrizzleSchema}.
 */
export interface EmitOptions {
  /** Include the RLS policy of each table (the default, as in the SQL). */
  readonly rls?: boolean | undefined
}

interface TableNames {
  readonly variable: string
  readonly columns: ReadonlyMap<string, string>
}

/**
 * The Drizzle schema module (drizzle-orm 0.45, `pg-core`) of a generated
 * tenant schema: one `pgTable` per shared table with the tenant column
 * (`tenantColumn()`), the composite primary key (`tenantPrimaryKey`), unique
 * constraints, checks, plain-column indexes, the tenant-paired foreign keys
 * and their `relations`, and the RLS policy (`tenantIsolationPolicy`). Types
 * Drizzle has no builder for are kept as they are in the SQL (`customType`);
 * what the module cannot express (expression or partial indexes) stays in the SQL,
 * and a comment says so.
 *
 * @example
 * ```ts
 * const source = emitDrizzleSchema(generated.plan) // export const accounts = pgTable('accounts', { ...
 * ```
 */
export function emitDrizzleSchema(plan: TenantSchemaPlan, options: EmitOptions = {}): string {
  const rls = options.rls !== false
  const scope = new NameScope()
  // Partitions are reached through their parent table.
  const tables = plan.tables.filter((t) => t.partitionOf === undefined)
  const enums = new Map(plan.enums.map((e) => [e.name, scope.take(`${camelName(e.name)}Enum`)]))
  const names = new Map(tables.map((t) => [t.name, tableNames(t, scope.take(camelName(t.name)))]))
  const relationLines = drizzleRelations(tables, names, plan)
  const relationExports = tables.flatMap((t) => {
    const lines = relationLines.get(t.name)
    if (!lines) return []
    const n = names.get(t.name)!
    return [
      `export const ${scope.take(`${n.variable}Relations`)} = relations(${n.variable}, ({ one, many }) => ({`,
      ...lines,
      '}))',
      '',
    ]
  })
  const out = [
    ...drizzleHeader(plan),
    ...plan.enums.map(
      (e) =>
        `export const ${enums.get(e.name)} = pgEnum(${quoted(e.name)}, [${e.labels.map(quoted).join(', ')}])`,
    ),
    ...(plan.enums.length > 0 ? [''] : []),
    ...tables.flatMap((t) => pgTableLines(t, names, plan, enums, rls)),
    ...relationExports,
  ]
  return `${out.join('\n').trimEnd()}\n`
}

/** The variable of a table and the property of each of its columns. */
function tableNames(table: TableDef, variable: string): TableNames {
  const cols = new NameScope()
  return {
    variable,
    columns: new Map(table.columns.map((c) => [c.name, cols.take(camelName(c.name))])),
  }
}

/** The header comments and imports of the module. */
function drizzleHeader(plan: TenantSchemaPlan): string[] {
  return [
    `// rowtenancy schema generate --emit drizzle: template ${quoted(plan.templateSchema)} -> ${quoted(plan.targetSchema)}`,
    '// Tables of the target schema; the SQL of `schema generate` stays the source of truth for the DDL.',
    "import { relations, sql } from 'drizzle-orm'",
    'import {',
    '  bigint, boolean, check, customType, date, doublePrecision, foreignKey, index, integer, json, jsonb,',
    '  numeric, pgEnum, pgTable, primaryKey, real, smallint, text, timestamp, unique, uniqueIndex, uuid, varchar,',
    "} from 'drizzle-orm/pg-core'",
    "import { tenantColumn, tenantIsolationPolicy, tenantPrimaryKey } from 'rowtenancy/drizzle'",
    '',
    '/** A column type kept as the database spells it. */',
    'const sqlType = (type: string) => customType<{ data: string }>({ dataType: () => type })',
    '',
  ]
}

/** The `relations` lines of each table, both sides of each foreign key inside the target schema. */
function drizzleRelations(
  tables: readonly TableDef[],
  names: ReadonlyMap<string, TableNames>,
  plan: TenantSchemaPlan,
): Map<string, string[]> {
  const lines = new Map<string, string[]>()
  for (const t of tables) {
    const n = names.get(t.name)!
    for (const fk of t.foreignKeys) {
      const ref = names.get(fk.refTable)
      if (!ref || fk.refSchema !== plan.targetSchema) continue
      addRelation(lines, n, ref, t, fk, plan)
    }
  }
  return lines
}

/** The `pgTable(...)` export of one table: columns, then keys, checks, indexes and policy. */
function pgTableLines(
  t: TableDef,
  names: ReadonlyMap<string, TableNames>,
  plan: TenantSchemaPlan,
  enums: ReadonlyMap<string, string>,
  rls: boolean,
): string[] {
  const n = names.get(t.name)!
  const col = (name: string) => `t.${n.columns.get(name)}`
  return [
    `export const ${n.variable} = pgTable(`,
    `  ${quoted(t.name)},`,
    '  {',
    ...t.columns.map((c) => `    ${n.columns.get(c.name)}: ${columnBuilder(c, plan, enums)},`),
    '  },',
    '  (t) => [',
    ...keyLines(t, col, plan),
    ...t.checks.map((c) => {
      const body = c.definition.replace(/^CHECK\s*\(/i, '').replace(/\)\s*(NOT VALID)?$/i, '')
      return `    check(${quoted(c.name)}, sql\`${templateText(body)}\`),`
    }),
    ...foreignKeyLines(t, n, col, names, plan),
    ...t.indexes.map((i) =>
      i.method === 'btree' && i.tail === '' && i.keys.every((k) => n.columns.has(k))
        ? `    ${i.unique ? 'uniqueIndex' : 'index'}(${quoted(i.name)}).on(${i.keys.map(col).join(', ')}),`
        : `    // index ${oneLine(i.name)}: ${i.method}, expression or partial: kept in the SQL`,
    ),
    ...(rls
      ? [
          `    tenantIsolationPolicy({ tenantColumn: ${quoted(plan.tenantColumn)}, tenantIdType: ${quoted(plan.tenantIdType)} }),`,
        ]
      : []),
    '  ],',
    ')',
    '',
  ]
}

/** The primary key and unique constraints of a table. */
function keyLines(t: TableDef, col: (name: string) => string, plan: TenantSchemaPlan): string[] {
  const pk = t.primaryKey
  const pkLines = !pk
    ? []
    : [
        pk.columns[0] === plan.tenantColumn
          ? `    tenantPrimaryKey(${pk.columns.map(col).join(', ')}),`
          : `    primaryKey({ name: ${quoted(pk.name)}, columns: [${pk.columns.map(col).join(', ')}] }),`,
      ]
  return [
    ...pkLines,
    ...t.uniques.map(
      (u) =>
        `    unique(${quoted(u.name)}).on(${u.columns.map(col).join(', ')})${u.nullsNotDistinct ? '.nullsNotDistinct()' : ''},`,
    ),
  ]
}

/** The `foreignKey(...)` lines of a table, for keys to tables of the target schema. */
function foreignKeyLines(
  t: TableDef,
  n: TableNames,
  col: (name: string) => string,
  names: ReadonlyMap<string, TableNames>,
  plan: TenantSchemaPlan,
): string[] {
  return t.foreignKeys.flatMap((fk) => {
    const ref = names.get(fk.refTable)
    if (!ref || fk.refSchema !== plan.targetSchema) return []
    const refCol = (c: string) =>
      `${ref.variable === n.variable ? 't' : ref.variable}.${ref.columns.get(c)}`
    return [
      `    foreignKey({ name: ${quoted(fk.name)}, columns: [${fk.columns.map(col).join(', ')}], ` +
        `foreignColumns: [${fk.refColumns.map(refCol).join(', ')}] })${fkActions(fk)},`,
    ]
  })
}

function addRelation(
  lines: Map<string, string[]>,
  from: TableNames,
  to: TableNames,
  table: TableDef,
  fk: ForeignKeyDef,
  plan: TenantSchemaPlan,
): void {
  const own = fk.columns.filter((c) => c !== plan.tenantColumn)
  const oneName = camelName(
    (own.length === 1 ? own[0]! : fk.refTable).replace(/_?id$/i, '') || fk.refTable,
  )
  const push = (table: string, line: string) => {
    let l = lines.get(table)
    if (!l) {
      l = []
      lines.set(table, l)
    }
    l.push(line)
  }
  const rel = `relationName: ${quoted(fk.name)}`
  push(
    table.name,
    `  ${uniqueKey(lines, table.name, oneName)}: one(${to.variable}, { fields: [${fk.columns.map((c) => `${from.variable}.${from.columns.get(c)}`).join(', ')}], references: [${fk.refColumns.map((c) => `${to.variable}.${to.columns.get(c)}`).join(', ')}], ${rel} }),`,
  )
  push(
    fk.refTable,
    `  ${uniqueKey(lines, fk.refTable, from.variable)}: many(${from.variable}, { ${rel} }),`,
  )
}

function uniqueKey(lines: Map<string, string[]>, table: string, base: string): string {
  const taken = new Set((lines.get(table) ?? []).map((l) => l.trim().split(':')[0]))
  let name = base
  for (let i = 2; taken.has(name); i++) name = `${base}${i}`
  return name
}

function columnBuilder(
  c: ColumnDef,
  plan: TenantSchemaPlan,
  enums: ReadonlyMap<string, string>,
): string {
  if (c.name === plan.tenantColumn) {
    return `tenantColumn({ name: ${quoted(c.name)}, type: ${quoted(plan.tenantIdType)} })`
  }
  let type = c.type
  let array = ''
  while (type.endsWith('[]')) {
    type = type.slice(0, -2)
    array += '.array()'
  }
  let b = `${baseBuilder(type, c.name, enums)}${array}`
  if (c.notNull) b += '.notNull()'
  if (c.identity === 'ALWAYS') b += '.generatedAlwaysAsIdentity()'
  else if (c.identity === 'BY DEFAULT') b += '.generatedByDefaultAsIdentity()'
  if (c.generated) b += `.generatedAlwaysAs(sql\`${templateText(c.generated)}\`)`
  else if (c.default !== undefined && !c.identity)
    b += `.default(sql\`${templateText(c.default)}\`)`
  return b
}

function baseBuilder(type: string, column: string, enums: ReadonlyMap<string, string>): string {
  const name = quoted(column)
  const enumVar = enums.get(type.replace(/^.*\./, '').replace(/^"|"$/g, ''))
  if (enumVar) return `${enumVar}(${name})`
  const m = /^(character varying|numeric|timestamp|character)(?:\((\d+)(?:,(\d+))?\))?(.*)$/.exec(
    type,
  )
  switch (type) {
    case 'bigint':
      return `bigint(${name}, { mode: 'number' })`
    case 'integer':
      return `integer(${name})`
    case 'smallint':
      return `smallint(${name})`
    case 'text':
      return `text(${name})`
    case 'boolean':
      return `boolean(${name})`
    case 'uuid':
      return `uuid(${name})`
    case 'jsonb':
      return `jsonb(${name})`
    case 'json':
      return `json(${name})`
    case 'date':
      return `date(${name})`
    case 'double precision':
      return `doublePrecision(${name})`
    case 'real':
      return `real(${name})`
  }
  if (m?.[1] === 'character varying') {
    return m[2] ? `varchar(${name}, { length: ${m[2]} })` : `varchar(${name})`
  }
  if (m?.[1] === 'numeric' && m[4] === '') {
    return m[2]
      ? `numeric(${name}, { precision: ${m[2]}, scale: ${m[3] ?? 0} })`
      : `numeric(${name})`
  }
  if (m?.[1] === 'timestamp') {
    const tz = m[4] === ' with time zone'
    if (tz || m[4] === ' without time zone') {
      const precision = m[2] ? `, precision: ${m[2]}` : ''
      return `timestamp(${name}, { withTimezone: ${tz}${precision} })`
    }
  }
  return `sqlType(${quoted(type)})(${name})`
}

function fkActions(fk: ForeignKeyDef): string {
  const action = (a: ForeignKeyDef['onDelete']) => quoted(a.toLowerCase())
  let s = ''
  if (fk.onDelete !== 'NO ACTION') s += `.onDelete(${action(fk.onDelete)})`
  if (fk.onUpdate !== 'NO ACTION') s += `.onUpdate(${action(fk.onUpdate)})`
  return s
}

/** Text for a tagged template literal: backslash, backtick and `${` escaped. */
function templateText(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/`/g, '\\`').replace(/\$\{/g, '\\${')
}

function oneLine(text: string): string {
  return text.replace(/[\r\n\u2028\u2029]+/g, ' ')
}
