import type { TypeCatalog } from '../sql/catalog/index.js'
import { typeMismatch } from './type-identity.js'
import type { ColumnInfo, DriftIssue, TableInfo } from './types.js'

const INT_RANK: Record<string, number> = { smallint: 1, integer: 2, bigint: 3 }
const TEXTUAL = /^(text|character varying(\(\d+\))?|character(\(\d+\))?)$/

/** The length limit of a varchar/char type, Infinity for text/varchar. */
function textLimit(type: string): number {
  const m = /\((\d+)\)/.exec(type)
  return m ? Number(m[1]) : type.startsWith('character(') ? 1 : Number.POSITIVE_INFINITY
}

/**
 * Whether every value of the source column fits the target column without loss:
 * the same type, an integer widening, a text widening, an enum whose labels
 * the target enum all has, or a domain/base type of the same name.
 *
 * @example
 * ```ts
 * typesCompatible({ type: 'integer', typeKind: 'b' }, { type: 'bigint', typeKind: 'b' }) // true
 * typesCompatible({ type: 'text', typeKind: 'b' }, { type: 'integer', typeKind: 'b' }) // false
 * ```
 */
export function typesCompatible(
  source: Pick<ColumnInfo, 'type' | 'typeKind' | 'enumLabels'>,
  target: Pick<ColumnInfo, 'type' | 'typeKind' | 'enumLabels'>,
): boolean {
  if (source.type === target.type) return source.typeKind !== 'e' || enumsFit(source, target)
  if (source.typeKind === 'e' && target.typeKind === 'e') return enumsFit(source, target)
  const s = INT_RANK[source.type]
  const t = INT_RANK[target.type]
  if (s !== undefined && t !== undefined) return s <= t
  if (s !== undefined && target.type.startsWith('numeric')) return target.type === 'numeric'
  if (source.type === 'real' && target.type === 'double precision') return true
  if (
    TEXTUAL.test(source.type) &&
    (target.type === 'text' || target.type === 'character varying')
  ) {
    return true
  }
  if (
    source.type.startsWith('character varying(') &&
    target.type.startsWith('character varying(')
  ) {
    return textLimit(source.type) <= textLimit(target.type)
  }
  if (source.typeKind === 'e' && TEXTUAL.test(target.type)) return target.type === 'text'
  // Same unqualified type name in another schema (a domain or composite copied to public).
  const bare = (t: string) => t.replace(/^("(?:[^"]|"")*"|[^."]+)\./, '')
  return source.typeKind === target.typeKind && bare(source.type) === bare(target.type)
}

/**
 * Enabled triggers the tenant's table and the shared table do not have in common
 * (not blocking: the copy fires none of them; the rows are copied as they are, but
 * the tenant's data was kept by other triggers than the shared table's).
 */
function triggerDifferences(src: TableInfo, tgt: TableInfo, targetSchema: string): DriftIssue[] {
  const issues: DriftIssue[] = []
  const mine = new Set(src.userTriggers)
  const shared = new Set(tgt.userTriggers)
  for (const name of src.userTriggers.filter((n) => !shared.has(n))) {
    issues.push({
      kind: 'trigger-difference',
      table: src.name,
      blocking: false,
      message: `Trigger ${name} is enabled on the tenant's ${src.name} but not on ${targetSchema}.${src.name}: what it maintains is copied as it is and no longer maintained.`,
    })
  }
  for (const name of tgt.userTriggers.filter((n) => !mine.has(n))) {
    issues.push({
      kind: 'trigger-difference',
      table: src.name,
      blocking: false,
      message: `Trigger ${name} is enabled on ${targetSchema}.${src.name} but missing or disabled on the tenant's ${src.name}: what it maintains may be stale in the tenant's rows, which are copied as they are.`,
    })
  }
  return issues
}

/** `undefined` when the source column's values fit the target column; else why not (`''`: no detail). */
function typeDifference(
  source: ColumnInfo,
  target: ColumnInfo,
  types: TypeCatalog | undefined,
  sourceSchema: string,
  targetSchema: string,
): string | undefined {
  if (!types || source.typeOid === undefined || target.typeOid === undefined) {
    return typesCompatible(source, target) ? undefined : ''
  }
  return typeMismatch(
    types,
    { oid: source.typeOid, mod: source.typeMod ?? -1 },
    { oid: target.typeOid, mod: target.typeMod ?? -1 },
    { source: sourceSchema, target: targetSchema },
  )
}

/** Both columns are enums, and the target puts the source's labels in another order. */
function enumOrderDiffers(
  source: Pick<ColumnInfo, 'enumLabels'>,
  target: Pick<ColumnInfo, 'enumLabels'>,
): boolean {
  if (!source.enumLabels || !target.enumLabels) return false
  const mine = new Set(source.enumLabels)
  const theirs = target.enumLabels.filter((l) => mine.has(l))
  return theirs.some((l, i) => l !== source.enumLabels![i])
}

function enumsFit(
  source: Pick<ColumnInfo, 'enumLabels'>,
  target: Pick<ColumnInfo, 'enumLabels'>,
): boolean {
  const have = new Set(target.enumLabels ?? [])
  return (source.enumLabels ?? []).every((l) => have.has(l))
}

/**
 * Compares one tenant schema with the target tables and lists every difference:
 * a source table with no target, a target without `tenant_id`, a source column
 * the target lacks, a type the target cannot hold (blocking); a target column the
 * tenant lacks (blocking only when NOT NULL without a default), a table the target
 * has but the tenant lacks (not blocking: the tenant has no rows of it, nothing to
 * copy, no data lost). `tenantTables` lists the tables to compare: the tenant tables
 * of the run and the target's tenant tables that no tenant of the run has.
 * With `types` (the catalog of every column type, {@link describeTypes}), types
 * are compared by identity and structure ({@link typeMismatch}), a type of the
 * tenant schema matching the target schema's type of the same name and shape;
 * without, by their printed names. Generated columns generated on both sides must
 * compute the same expression (each schema's own objects unqualified).
 *
 * @example
 * ```ts
 * const issues = compareWithTarget(sourceTables, targetTables, ['book', 'author'], 'public')
 * issues.filter((i) => i.blocking) // []
 * ```
 */
export function compareWithTarget(
  source: ReadonlyMap<string, TableInfo>,
  target: ReadonlyMap<string, TableInfo>,
  tenantTables: readonly string[],
  targetSchema: string,
  tenantColumn = 'tenant_id',
  types?: TypeCatalog,
): DriftIssue[] {
  const issues: DriftIssue[] = []
  for (const name of tenantTables) {
    const src = source.get(name)
    const tgt = target.get(name)
    if (!src) {
      if (tgt) {
        issues.push({
          kind: 'missing-source-table',
          table: name,
          blocking: false,
          message:
            `The tenant schema has no table ${name}: the tenant has no rows of it, so nothing is ` +
            `copied into ${targetSchema}.${name} (not blocking: no data is lost).`,
        })
      }
      continue
    }
    if (!tgt) {
      issues.push({
        kind: 'missing-target-table',
        table: name,
        blocking: true,
        message: `${name} has no target table ${targetSchema}.${name}: create it (rowtenancy schema generate, or the app's migrations).`,
      })
      continue
    }
    const tcols = new Map(tgt.columns.map((c) => [c.name, c]))
    if (!tcols.has(tenantColumn)) {
      issues.push({
        kind: 'target-missing-tenant-id',
        table: name,
        blocking: true,
        message: `The target table ${targetSchema}.${name} has no ${tenantColumn} column.`,
      })
      continue
    }
    const scols = new Set(src.columns.map((c) => c.name))
    for (const col of src.columns) {
      const t = tcols.get(col.name)
      if (!t) {
        issues.push({
          kind: 'missing-target-column',
          table: name,
          column: col.name,
          blocking: true,
          message: `${name}.${col.name} (${col.type}) has no column in ${targetSchema}.${name}; its data would be lost.`,
        })
      } else {
        const why = typeDifference(col, t, types, src.schema, targetSchema)
        if (why !== undefined) {
          issues.push({
            kind: 'type-mismatch',
            table: name,
            column: col.name,
            blocking: true,
            message: `${name}.${col.name} is ${col.type} but ${targetSchema}.${name}.${col.name} is ${t.type}${why ? `: ${why}` : ''}.`,
          })
        } else if (enumOrderDiffers(col, t)) {
          const order = (labels: readonly string[]) => labels.join(', ')
          issues.push({
            kind: 'type-mismatch',
            table: name,
            column: col.name,
            blocking: false,
            message:
              `${name}.${col.name}: the enum orders its labels (${order(col.enumLabels ?? [])}) in the tenant schema ` +
              `but (${order(t.enumLabels ?? [])}) in ${targetSchema}: after the migration ORDER BY and comparisons ` +
              `on it follow ${targetSchema}'s order (not blocking: the values are copied as they are).`,
          })
        } else if (col.generation && t.generation && col.generation !== t.generation) {
          issues.push({
            kind: 'generation-mismatch',
            table: name,
            column: col.name,
            blocking: true,
            message:
              `${name}.${col.name} is generated as ${col.generation} in the tenant schema but as ` +
              `${t.generation} in ${targetSchema}.${name}: the copied values would change.`,
          })
        }
      }
    }
    issues.push(...triggerDifferences(src, tgt, targetSchema))
    for (const t of tgt.columns) {
      if (t.name === tenantColumn || scols.has(t.name)) continue
      const blocking = t.notNull && !t.hasDefault && !t.generated && t.identity === ''
      issues.push({
        kind: 'extra-target-column',
        table: name,
        column: t.name,
        blocking,
        message: blocking
          ? `${targetSchema}.${name}.${t.name} is NOT NULL without a default and the tenant has no such column.`
          : `${targetSchema}.${name}.${t.name} is not in the tenant schema; it gets its default.`,
      })
    }
  }
  return issues
}

/** The first line where two definitions differ, both sides, shortened. */
function firstDifference(
  mine: string,
  theirs: string,
): { line: number; mine: string; theirs: string } {
  const a = mine.split('\n')
  const b = theirs.split('\n')
  let i = 0
  while (i < a.length && i < b.length && a[i] === b[i]) i++
  const cut = (l: string | undefined) => {
    const t = (l ?? '').trim()
    return t.length > 160 ? `${t.slice(0, 157)}...` : t
  }
  return { line: i + 1, mine: cut(a[i]), theirs: cut(b[i]) }
}

/**
 * The functions, views and triggers of a tenant schema that the target schema lacks
 * or defines otherwise (definitions compared with each schema's own name left out),
 * each message naming the tenant schema, the object and the first line that differs.
 * `schema generate` carries one definition (the template's) over, so a tenant whose
 * trigger, function or view says something else is told here. Not blocking: the rows
 * are copied as they are, but after the migration the tenant's rows are kept by the
 * target's definitions.
 *
 * @example
 * ```ts
 * routineDifferences(defs.get('tenant_1')!, defs.get('public')!, 'public', 'tenant_1')
 * // [{ kind: 'routine-difference', blocking: false, message: 'Tenant schema "tenant_1": function film_count(lang integer) differs ...' }]
 * ```
 */
export function routineDifferences(
  tenant: ReadonlyMap<string, string>,
  target: ReadonlyMap<string, string>,
  targetSchema: string,
  tenantSchema?: string,
): DriftIssue[] {
  const issues: DriftIssue[] = []
  // schema generate creates a SECURITY DEFINER function SECURITY INVOKER (and says so).
  const plain = (d: string | undefined) => d?.replace('\n SECURITY DEFINER\n', '\n')
  const who =
    tenantSchema === undefined
      ? 'The tenant schema'
      : `Tenant schema ${JSON.stringify(tenantSchema)}`
  for (const [name, definition] of tenant) {
    const theirs = target.get(name)
    if (plain(theirs) === plain(definition)) continue
    const kind = name.startsWith('trigger ') ? 'trigger-difference' : 'routine-difference'
    const table = kind === 'trigger-difference' ? name.replace(/^trigger .* on /, '') : undefined
    let message: string
    if (theirs === undefined) {
      message = `${who} has ${name}, which ${targetSchema} lacks (rowtenancy schema generate carries the template's over).`
    } else {
      const d = firstDifference(plain(definition)!, plain(theirs)!)
      message =
        `${who}: ${name} differs from ${targetSchema}'s (line ${d.line}: ${JSON.stringify(d.mine)} in the tenant, ` +
        `${JSON.stringify(d.theirs)} in ${targetSchema}): after the migration the tenant gets ${targetSchema}'s.`
    }
    issues.push({ kind, ...(table ? { table } : {}), blocking: false, message })
  }
  return issues
}
