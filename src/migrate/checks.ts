import type { Queryable } from '../tenants/queryable.js'
import {
  orphanStatements,
  type SqlContext,
  sourceChecksumStatement,
  targetChecksumStatement,
} from './copy-sql.js'
import type { TablePlan } from './plan.js'

/**
 * The result of comparing one table of one tenant, source vs target.
 *
 * @example
 * ```ts
 * const c: TableCheck = { table: 'book', sourceRows: 3, targetRows: 3, sourceChecksum: '12',
 *   targetChecksum: '12', orphans: [], ok: true }
 * ```
 */
export interface TableCheck {
  readonly table: string
  /** `null` when the source schema is gone (dropped after a verified migration). */
  readonly sourceRows: number | null
  readonly targetRows: number
  readonly sourceChecksum: string | null
  readonly targetChecksum: string
  /** Foreign keys of the target table with rows of this tenant that point nowhere. */
  readonly orphans: readonly { readonly fk: string; readonly rows: number }[]
  readonly ok: boolean
}

/**
 * Counts and checksums one table on both sides (and, optionally, looks for
 * orphaned foreign keys among the tenant's target rows). With `expected`, the
 * target is also compared with what the ledger recorded at copy time, which is
 * all there is to compare once the source schema is dropped.
 *
 * @example
 * ```ts
 * const check = await checkTable(client, ctx, table, { orphans: true })
 * check.ok // true when counts and checksums match and nothing is orphaned
 * ```
 */
export async function checkTable(
  db: Queryable,
  ctx: SqlContext,
  t: TablePlan,
  options: { orphans: boolean; source?: boolean; expected?: { rows: number; checksum: string } },
): Promise<TableCheck> {
  const tgtStmt = targetChecksumStatement(ctx, t)
  const tgt = (await db.query(tgtStmt.text, tgtStmt.values)).rows[0]
  let src: { n: string; sum: string } | undefined
  if (options.source !== false) {
    const s = sourceChecksumStatement(ctx, t)
    src = (await db.query(s.text, s.values)).rows[0]
  }
  const orphans: { fk: string; rows: number }[] = []
  if (options.orphans) {
    for (const o of orphanStatements(ctx, t)) {
      const n = Number((await db.query(o.statement.text, o.statement.values)).rows[0]?.n ?? 0)
      if (n > 0) orphans.push({ fk: o.fk, rows: n })
    }
  }
  const targetRows = Number(tgt.n)
  const sourceRows = src ? Number(src.n) : null
  let ok = orphans.length === 0
  if (src) ok &&= sourceRows === targetRows && src.sum === tgt.sum
  if (options.expected) {
    // An empty recorded checksum: copied with --no-verify, only the count was recorded.
    ok &&= options.expected.rows === targetRows
    if (options.expected.checksum !== '') ok &&= options.expected.checksum === tgt.sum
  }
  return {
    table: t.name,
    sourceRows,
    targetRows,
    sourceChecksum: src ? src.sum : null,
    targetChecksum: tgt.sum,
    orphans,
    ok,
  }
}

/**
 * A one-line explanation of a failed {@link TableCheck}.
 *
 * @example
 * ```ts
 * describeCheck(check) // 'book: source 3 rows, target 2 rows'
 * ```
 */
export function describeCheck(c: TableCheck): string {
  const parts: string[] = []
  if (c.sourceRows !== null && c.sourceRows !== c.targetRows) {
    parts.push(`source ${c.sourceRows} rows, target ${c.targetRows} rows`)
  } else if (c.sourceChecksum !== null && c.sourceChecksum !== c.targetChecksum) {
    parts.push(`checksums differ (source ${c.sourceChecksum}, target ${c.targetChecksum})`)
  }
  for (const o of c.orphans) parts.push(`${o.rows} rows break foreign key ${o.fk}`)
  if (parts.length === 0 && !c.ok) parts.push('the target differs from what the ledger recorded')
  return `${c.table}: ${parts.join('; ')}`
}
