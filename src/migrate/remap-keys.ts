import { MigrationError } from '../errors/index.js'
import type { TypeCatalog } from '../sql/catalog/index.js'
import type { ColumnInfo, ForeignKeyInfo } from '../sql/catalog/model.js'
import { type Queryable, selectRows } from '../sql/queryable.js'
import type { DriftIssue, TableInfo } from './types.js'

const INTEGER_TYPES = new Set(['smallint', 'integer', 'bigint'])
/** `int8`, `int2`, `int4`. */
const INTEGER_OIDS = new Set(['20', '21', '23'])

/**
 * Whether a column holds integers: its type, or the base of its domain (domains of
 * domains followed), is `smallint`, `integer` or `bigint`, by OID: a domain in a schema
 * whose name needs quotes is no different. By name only when the OID is not known.
 */
function isInteger(column: ColumnInfo | undefined, types: TypeCatalog): boolean {
  if (!column) return false
  if (column.typeOid === undefined) return INTEGER_TYPES.has(column.type)
  let oid: string | undefined = column.typeOid
  for (let depth = 0; oid !== undefined && depth < 16; depth++) {
    if (INTEGER_OIDS.has(oid)) return true
    const shape = types.get(oid)
    oid = shape?.kind === 'd' ? shape.base?.oid : undefined
  }
  return false
}

/**
 * How the `remap` strategy gives one table's key new values.
 *
 * @example
 * ```ts
 * const k: RemapKey = { table: 'line', column: 'line_no', sequence: 'public.line_line_no_seq',
 *   scope: ['order_id'], tenantScoped: false }
 * ```
 */
export interface RemapKey {
  readonly table: string
  /** The key column that gets new values. */
  readonly column: string
  /** The target's sequence (serial or identity) the new values come from; without one, the largest value + a row number. */
  readonly sequence?: string
  /** The other key columns (the tenant column left out) whose source values tell equal old values apart; empty when the old value is a key alone. */
  readonly scope: readonly string[]
  /** The target key leads with the tenant column: new values need only be unique within the tenant. */
  readonly tenantScoped: boolean
}

/**
 * The column of each target table that draws from a sequence (serial or identity),
 * by table then column: one query for the whole schema.
 *
 * @example
 * ```ts
 * (await columnSequences(pool, 'public')).get('book')?.get('id') // 'public.book_id_seq'
 * ```
 */
export async function columnSequences(
  db: Queryable,
  schema: string,
): Promise<Map<string, Map<string, string>>> {
  const rows = await selectRows<{ table: string; column: string; seq: string }>(
    db,
    `select * from (
       select c.relname as table, a.attname as column,
              pg_get_serial_sequence(quote_ident(n.nspname) || '.' || quote_ident(c.relname), a.attname) as seq
         from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = $1 and c.relkind in ('r', 'p') and not c.relispartition
          and a.attnum > 0 and not a.attisdropped) x
      where seq is not null`,
    [schema],
  )
  const out = new Map<string, Map<string, string>>()
  for (const r of rows) {
    if (!out.has(r.table)) out.set(r.table, new Map())
    out.get(r.table)!.set(r.column, r.seq)
  }
  return out
}

/** The foreign-key column pairs of a key, the tenant column's own pair left out. */
function pairsOf(fk: ForeignKeyInfo, tenantColumn: string): { column: string; ref: string }[] {
  return fk.columns
    .map((column, i) => ({ column, ref: fk.refColumns[i]! }))
    .filter((p) => !(p.column === tenantColumn && p.ref === tenantColumn))
}

/**
 * The target tables whose key `remap` renumbers, and how. A key (the tenant column
 * left out) with one column drawing from a sequence or identity gets new values from
 * it; a single integer key column without one gets the largest value + a row number
 * (within the tenant when the key leads with the tenant column, else under a lock per
 * table). A key column that is also a foreign-key column takes its parent's new value
 * instead. Throws, naming the table and the fix, for a key remap cannot renumber
 * (two generated columns) when the table is in the run (`inRun`).
 *
 * @example
 * ```ts
 * remapKeys(targets, await columnSequences(pool, 'public'), 'tenant_id', new Set(['book']), types).get('book')
 * // { table: 'book', column: 'id', sequence: 'public.book_id_seq', scope: [], tenantScoped: false }
 * ```
 */
export function remapKeys(
  targets: ReadonlyMap<string, TableInfo>,
  sequences: ReadonlyMap<string, ReadonlyMap<string, string>>,
  tenantColumn: string,
  inRun: ReadonlySet<string>,
  types: TypeCatalog,
): Map<string, RemapKey> {
  const out = new Map<string, RemapKey>()
  for (const t of targets.values()) {
    if (!t.columns.some((c) => c.name === tenantColumn)) continue
    const key = t.primaryKey.filter((c) => c !== tenantColumn)
    const fkColumns = new Set(
      t.foreignKeys.flatMap((fk) => pairsOf(fk, tenantColumn).map((p) => p.column)),
    )
    const integer = (c: string) =>
      isInteger(
        t.columns.find((x) => x.name === c),
        types,
      )
    const own = key.filter((c) => !fkColumns.has(c) && integer(c))
    const generated = own.filter((c) => sequences.get(t.name)?.has(c))
    if (generated.length > 1) {
      if (!inRun.has(t.name)) continue
      throw new MigrationError(
        `remap cannot renumber the key of ${t.schema}.${t.name} (${key.join(', ')}): ${generated.join(' and ')} ` +
          'each draw from a sequence, and remap gives new values to one column of a key. Give the table one ' +
          'generated key column, or migrate with `--id-strategy composite` (the default), which keeps every id.',
      )
    }
    const column = generated[0] ?? (key.length === 1 && own.length === 1 ? own[0] : undefined)
    if (column === undefined) continue
    const sequence = sequences.get(t.name)?.get(column)
    out.set(t.name, {
      table: t.name,
      column,
      ...(sequence ? { sequence } : {}),
      scope: key.filter((c) => c !== column),
      tenantScoped: t.primaryKey.includes(tenantColumn),
    })
  }
  return out
}

/**
 * A table's {@link RemapKey} as one tenant's source rows need it: the scope is dropped
 * when the source key is the renumbered column alone (its old values are unique);
 * `undefined` when the source has no such column (the target fills it itself).
 */
export function sourceKey(key: RemapKey | undefined, src: TableInfo): RemapKey | undefined {
  if (!key || !src.columns.some((c) => c.name === key.column)) return undefined
  const alone = src.primaryKey.length === 1 && src.primaryKey[0] === key.column
  return alone ? { ...key, scope: [] } : key
}

/** How one source column reaches its target under `remap` (see `RemapColumn` in plan.ts). */
export interface RemapColumnPlan {
  readonly kind: 'key' | 'ref'
  readonly table: string
  readonly scope: readonly string[]
}

/** One tenant table's remap: its renumbered key, its translated columns, what remap cannot rewrite. */
export interface TableRemap {
  readonly key: RemapKey | undefined
  readonly columns: ReadonlyMap<string, RemapColumnPlan>
  readonly issues: readonly DriftIssue[]
}

/**
 * Every tenant table's remapped columns: its own renumbered key, and every column of a
 * foreign key (declared in the tenant schema or on the target) that points at a
 * remapped column, followed through (a key `(org_id, invoice_seq)` into
 * `invoice(org_id, seq_no)` maps `org_id` through `org` as `invoice.org_id` is), with
 * self-references and cycles. Shapes remap cannot rewrite become blocking drift naming
 * the table, the key and the fix.
 *
 * @example
 * ```ts
 * remapTables(sources, targets, keys, 'public', 'tenant_id', types).get('book')?.columns.get('author_id')
 * // { kind: 'ref', table: 'author', scope: [] }
 * ```
 */
export function remapTables(
  sources: ReadonlyMap<string, TableInfo>,
  targets: ReadonlyMap<string, TableInfo>,
  keys: ReadonlyMap<string, RemapKey>,
  targetSchema: string,
  tenantColumn: string,
  types: TypeCatalog,
): Map<string, TableRemap> {
  const columns = new Map<string, Map<string, RemapColumnPlan>>()
  const issues = new Map<string, Map<string, DriftIssue>>()
  const keyOf = new Map<string, RemapKey | undefined>()
  const block = (table: string, column: string, message: string) => {
    if (!issues.has(table)) issues.set(table, new Map())
    issues
      .get(table)!
      .set(message, { kind: 'type-mismatch', table, column, blocking: true, message })
  }
  const has = (t: TableInfo, c: string) => t.columns.some((x) => x.name === c)
  const tables = [...sources.values()].filter((t) => targets.has(t.name))
  for (const src of tables) {
    columns.set(src.name, new Map())
    let key = sourceKey(keys.get(src.name), src)
    if (key) {
      const column = src.columns.find((c) => c.name === key!.column)!
      const type = column.type
      const missing = key.scope.filter((c) => !has(src, c))
      if (!isInteger(column, types)) {
        block(
          src.name,
          key.column,
          `${src.name}.${key.column} is ${type} in the tenant schema; remap renumbers it and keeps old -> new ` +
            'integer ids in rowtenancy_id_map. Use `--id-strategy composite` (the default), or make the column an integer first.',
        )
        key = undefined
      } else if (missing.length > 0) {
        block(
          src.name,
          key.column,
          `${src.name} has no column ${missing.join(', ')}, which remap needs to tell its old ${key.column} values apart ` +
            `(the target key is ${[...key.scope, key.column].join(', ')}). Add it, or use \`--id-strategy composite\`.`,
        )
        key = undefined
      } else {
        columns.get(src.name)!.set(key.column, { kind: 'key', table: src.name, scope: key.scope })
      }
    }
    keyOf.set(src.name, key)
  }
  const fksOf = (src: TableInfo) => [
    ...src.foreignKeys.filter((fk) => fk.refSchema === src.schema),
    ...(targets.get(src.name)?.foreignKeys ?? []).filter((fk) => fk.refSchema === targetSchema),
  ]
  // Follow references until nothing is added: each pass maps columns that point at mapped ones.
  for (let changed = true; changed; ) {
    changed = false
    for (const src of tables) {
      const mine = columns.get(src.name)!
      for (const fk of fksOf(src)) {
        const theirs = columns.get(fk.refTable)
        if (!theirs) continue
        const pairs = pairsOf(fk, tenantColumn)
        for (const pair of pairs) {
          const m = theirs.get(pair.ref)
          if (!m || !has(src, pair.column)) continue
          const scope = m.scope.map((c) => pairs.find((p) => p.ref === c)?.column)
          if (scope.some((c) => c === undefined || !has(src, c))) {
            block(
              src.name,
              pair.column,
              `${src.name}.${fk.name} points at ${fk.refTable}(${fk.refColumns.join(', ')}), but remap tells the old ` +
                `${pair.ref} values of ${fk.refTable} apart by (${[...m.scope, pair.ref].join(', ')}): the key must name ` +
                'all of them. Reference the whole key, or use `--id-strategy composite`.',
            )
            continue
          }
          const plan: RemapColumnPlan = { kind: 'ref', table: m.table, scope: scope as string[] }
          const before = mine.get(pair.column)
          if (!before) {
            mine.set(pair.column, plan)
            changed = true
          } else if (
            before.table !== plan.table ||
            before.scope.join('\0') !== plan.scope.join('\0')
          ) {
            block(
              src.name,
              pair.column,
              `${src.name}.${pair.column} is ${before.kind === 'key' ? `the renumbered key of ${src.name}` : `a reference to ${before.table}`} ` +
                `and also a reference to ${plan.table} (${fk.name}); remap can give it one new value only. ` +
                'Use `--id-strategy composite`.',
            )
          }
        }
      }
    }
  }
  return new Map(
    tables.map((t) => [
      t.name,
      {
        key: keyOf.get(t.name),
        columns: columns.get(t.name)!,
        issues: [...(issues.get(t.name)?.values() ?? [])],
      },
    ]),
  )
}
