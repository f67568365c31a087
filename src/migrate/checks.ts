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
  let src: { n: string; sum: string } | undefined
  if (options.source !== false) {
    const s = sourceChecksumStatement(ctx, t)
    src = (await db.query(s.text, s.values)).rows[0]
  }
  const orphans: { fk: string; rows: number }[] = []
  const tgt = await tenantScoped(db, async () => {
    const tgtStmt = targetChecksumStatement(ctx, t)
    const row = (await db.query(tgtStmt.text, tgtStmt.values)).rows[0]
    if (options.orphans) {
      for (const o of orphanStatements(ctx, t)) {
        const n = Number((await db.query(o.statement.text, o.statement.values)).rows[0]?.n ?? 0)
        if (n > 0) orphans.push({ fk: o.fk, rows: n })
      }
    }
    return row
  })
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
 * Runs `fn` (inside the caller's transaction) with sequential scans discouraged,
 * then restores the setting. The shared tables grow during a migration faster
 * than autovacuum analyzes them: planned from stale statistics ("the table is
 * empty"), a query for one tenant's rows would scan every tenant's rows, and a
 * run would get quadratically slower. Every tenant-side query has the tenant-leading
 * key to use instead.
 *
 * @example
 * ```ts
 * await tenantScoped(client, () => client.query('select count(*) from public.book where tenant_id = $1', ['7']))
 * ```
 * @internal
 */
export async function tenantScoped<T>(db: Queryable, fn: () => Promise<T>): Promise<T> {
  const prev = String(
    (await db.query("select current_setting('enable_seqscan') as v")).rows[0]?.v ?? 'on',
  )
  await db.query("select set_config('enable_seqscan', 'off', true)")
  try {
    return await fn()
  } finally {
    // After an error the transaction is aborted and this fails too; the original error wins.
    await db.query("select set_config('enable_seqscan', $1, true)", [prev]).catch(() => {})
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
