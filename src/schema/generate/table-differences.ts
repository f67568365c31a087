import type { ColumnDef, ForeignKeyDef, KeyDef, TableDef } from '../../sql/catalog/model.js'

const columnShape = (c: ColumnDef) =>
  `${c.type}${c.notNull || c.identity ? ' not null' : ''}` +
  `${c.identity ? ' identity' : ''}${c.generated !== undefined ? ' generated' : ''}`

const keyShape = (k: KeyDef) => k.columns.join(',')

const fkShape = (fk: ForeignKeyDef) =>
  `(${fk.columns.join(',')}) -> ${fk.refSchema}.${fk.refTable}(${fk.refColumns.join(',')})`

/**
 * How an existing table differs from the planned one, in words: columns (name,
 * type, nullability, identity, generated), primary key, unique constraints and
 * foreign keys. Empty when they match.
 *
 * @example
 * ```ts
 * tableDifferences(planned, existing) // ['"books": column "title" is integer, expected text']
 * ```
 * @internal
 */
export function tableDifferences(planned: TableDef, existing: TableDef): string[] {
  const t = JSON.stringify(planned.name)
  const out: string[] = []
  const actual = new Map(existing.columns.map((c) => [c.name, c]))
  for (const c of planned.columns) {
    const a = actual.get(c.name)
    if (!a) out.push(`${t}: column ${JSON.stringify(c.name)} is missing`)
    else if (columnShape(a) !== columnShape(c)) {
      out.push(
        `${t}: column ${JSON.stringify(c.name)} is ${columnShape(a)}, expected ${columnShape(c)}`,
      )
    }
    actual.delete(c.name)
  }
  for (const name of actual.keys()) out.push(`${t}: extra column ${JSON.stringify(name)}`)
  const pk = (k: KeyDef | undefined) => (k ? keyShape(k) : 'none')
  if (pk(planned.primaryKey) !== pk(existing.primaryKey)) {
    out.push(
      `${t}: primary key is (${pk(existing.primaryKey)}), expected (${pk(planned.primaryKey)})`,
    )
  }
  const same = (a: string[], b: string[]) => JSON.stringify(a.sort()) === JSON.stringify(b.sort())
  if (!same(planned.uniques.map(keyShape), existing.uniques.map(keyShape))) {
    out.push(`${t}: unique constraints differ`)
  }
  const inline = planned.columns.flatMap((c) =>
    c.references
      ? [`(${c.name}) -> ${c.references.schema}.${c.references.table}(${c.references.column})`]
      : [],
  )
  if (!same([...planned.foreignKeys.map(fkShape), ...inline], existing.foreignKeys.map(fkShape))) {
    out.push(`${t}: foreign keys differ`)
  }
  return out
}
