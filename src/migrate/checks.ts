import { MigrationError } from '../errors/index.js'
import type { Queryable } from '../sql/queryable.js'
import {
  orphanStatement,
  type SqlContext,
  sourceChecksumStatement,
  targetChecksumStatement,
} from './copy-sql.js'
import type { TablePlan } from './plan.js'
import { checksumKindOf, pinChecksumSettings } from './row-checksum.js'

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
 * What {@link checkTables} compares one table with.
 */
export interface CheckItem {
  readonly table: TablePlan
  /** What the ledger recorded at copy time (`checksum: ''` after `verify: false`). */
  readonly expected?: { readonly rows: number; readonly checksum: string }
}

/**
 * Counts and checksums tables of one tenant on both sides (and, optionally,
 * looks for orphaned foreign keys among the tenant's target rows). With
 * `expected`, the target is also compared with what the ledger recorded, which
 * is all there is to compare once the source schema is dropped. Source tables
 * are read first; then, in one {@link tenantScoped} block, the target side.
 * Run it inside a transaction.
 *
 * @example
 * ```ts
 * const [check] = await checkTables(client, ctx, [{ table }], { orphans: true })
 * check.ok // true when counts and checksums match and nothing is orphaned
 * ```
 */
export async function checkTables(
  db: Queryable,
  ctx: SqlContext,
  items: readonly CheckItem[],
  options: { orphans: boolean; source?: boolean },
): Promise<TableCheck[]> {
  await pinChecksumSettings(db)
  const sources: ({ n: string; sum: string } | undefined)[] = []
  // Both sides are hashed as the ledger's checksum was (an earlier version's ledger: as text).
  const kindOf = (item: CheckItem) => checksumKindOf(item.expected?.checksum)
  for (const item of items) {
    if (options.source === false) {
      sources.push(undefined)
      continue
    }
    const s = sourceChecksumStatement(ctx, item.table, kindOf(item))
    sources.push((await db.query(s.text, s.values)).rows[0])
  }
  return tenantScoped(db, async () => {
    const out: TableCheck[] = []
    for (const [i, item] of items.entries()) {
      const { table, expected } = item
      const tgtStmt = targetChecksumStatement(ctx, table, kindOf(item))
      const tgt = (await db.query(tgtStmt.text, tgtStmt.values)).rows[0]
      const orphans = options.orphans ? await foreignKeyOrphans(db, ctx, table) : []
      const src = sources[i]
      const targetRows = Number(tgt.n)
      const sourceRows = src ? Number(src.n) : null
      let ok = orphans.length === 0
      if (src) ok &&= sourceRows === targetRows && src.sum === tgt.sum
      if (expected) {
        // An empty recorded checksum: copied with --no-verify, only the count was recorded.
        ok &&= expected.rows === targetRows
        if (expected.checksum !== '') ok &&= expected.checksum === tgt.sum
      }
      out.push({
        table: table.name,
        sourceRows,
        targetRows,
        sourceChecksum: src ? src.sum : null,
        targetChecksum: tgt.sum,
        orphans,
        ok,
      })
    }
    return out
  })
}

/**
 * The foreign keys of the target table with rows of this tenant that point
 * nowhere, and how many (one statement per table; see {@link orphanStatement}).
 * Run it inside {@link tenantScoped}.
 *
 * @example
 * ```ts
 * await foreignKeyOrphans(client, ctx, table) // [{ fk: 'book_author_fk', rows: 1 }]
 * ```
 */
export async function foreignKeyOrphans(
  db: Queryable,
  ctx: SqlContext,
  table: TablePlan,
): Promise<{ fk: string; rows: number }[]> {
  const orphans: { fk: string; rows: number }[] = []
  const o = orphanStatement(ctx, table)
  if (!o) return orphans
  const row = (await db.query(o.statement.text, o.statement.values)).rows[0] ?? {}
  for (const [j, fk] of o.fks.entries()) {
    const n = Number(row[String(j)] ?? 0)
    if (n > 0) orphans.push({ fk, rows: n })
  }
  return orphans
}

/**
 * {@link foreignKeyOrphans} for several tables in ONE statement (one round trip):
 * the broken keys by table name (tables with none are left out). Run it inside
 * {@link tenantScoped}.
 *
 * @example
 * ```ts
 * (await foreignKeyOrphansOfTables(client, ctx, tables)).get('book') // [{ fk: 'book_author_fk', rows: 1 }]
 * ```
 */
export async function foreignKeyOrphansOfTables(
  db: Queryable,
  ctx: SqlContext,
  tables: readonly TablePlan[],
): Promise<Map<string, { fk: string; rows: number }[]>> {
  const o = orphansOfTablesStatement(ctx, tables)
  if (!o) return new Map()
  return o.read((await db.query(o.text, [ctx.tenantId])).rows[0])
}

/**
 * The statement of {@link foreignKeyOrphansOfTables} (`tenant`: `$1`, or a quoted
 * literal to send it with others in one round trip) and how to read its row;
 * `undefined` when no table has a key to check.
 *
 * @example
 * ```ts
 * const o = orphansOfTablesStatement(ctx, tables, "'7'")
 * o?.read((await client.query(o.text, [])).rows[0]).get('book') // [{ fk: 'book_author_fk', rows: 1 }]
 * ```
 * @internal
 */
export function orphansOfTablesStatement(
  ctx: SqlContext,
  tables: readonly TablePlan[],
  tenant = '$1',
):
  | {
      text: string
      read: (
        row: Record<string, unknown> | undefined,
      ) => Map<string, { fk: string; rows: number }[]>
    }
  | undefined {
  const parts = tables.flatMap((t) => {
    const o = orphanStatement(ctx, t, tenant)
    return o ? [{ table: t.name, ...o }] : []
  })
  if (parts.length === 0) return undefined
  // Each part is `select <count> as "0", <count> as "1", ...`: renamed per table.
  const columns = parts.flatMap((p, i) => p.fks.map((_fk, j) => `o${i}."${j}" as "${i}.${j}"`))
  const from = parts.map((p, i) => `lateral (${p.statement.text}) o${i}`).join(', ')
  const read = (row: Record<string, unknown> | undefined) => {
    const out = new Map<string, { fk: string; rows: number }[]>()
    for (const [i, p] of parts.entries()) {
      for (const [j, fk] of p.fks.entries()) {
        // A count that is not there is not a count of zero.
        const value = row?.[`${i}.${j}`]
        if (value === undefined || value === null)
          throw new MigrationError(`The orphan check of ${p.table} (${fk}) returned no count.`)
        const n = Number(value)
        if (n > 0) out.set(p.table, [...(out.get(p.table) ?? []), { fk, rows: n }])
      }
    }
    return out
  }
  return { text: `select ${columns.join(', ')} from ${from}`, read }
}

/**
 * {@link checkTables} for a single table.
 *
 * @example
 * ```ts
 * const check = await checkTable(client, ctx, table, { orphans: true })
 * ```
 */
export async function checkTable(
  db: Queryable,
  ctx: SqlContext,
  t: TablePlan,
  options: { orphans: boolean; source?: boolean; expected?: { rows: number; checksum: string } },
): Promise<TableCheck> {
  const item: CheckItem = options.expected ? { table: t, expected: options.expected } : { table: t }
  const [check] = await checkTables(db, ctx, [item], options)
  return check!
}

/**
 * Runs `fn` (inside the caller's transaction) with sequential scans and nested
 * loops discouraged, then restores the settings. The shared tables grow during a
 * migration faster than autovacuum analyzes them: planned from stale statistics
 * ("the table is empty"), a query for one tenant's rows would scan every tenant's
 * rows, and a run would get quadratically slower. Every tenant-side query has the
 * tenant-leading key to use instead. And the tenant being copied is never in the
 * statistics (its rows are written in this very transaction): after an ANALYZE its
 * id is estimated at 1 row, and the foreign-key anti join became a nested loop that
 * rescanned the tenant's parent rows for every child row (600 ms for 3,300 rows
 * instead of 1 ms); no nested loop leaves a hash or merge anti join, one pass each.
 *
 * @example
 * ```ts
 * await tenantScoped(client, () => client.query('select count(*) from public.book where tenant_id = $1', ['7']))
 * ```
 * @internal
 */
export async function tenantScoped<T>(db: Queryable, fn: () => Promise<T>): Promise<T> {
  // Discouraged scans inflate cost estimates past jit_above_cost: JIT compiling a query
  // that reads one tenant's rows would cost more than running it. One round trip: the
  // materialized CTE reads the settings before the outer select changes them.
  const prev = (
    await db.query(
      "with p as materialized (select current_setting('enable_seqscan') as seq, current_setting('enable_nestloop') as nl, " +
        "current_setting('jit') as jit) select p.*, set_config('enable_seqscan', 'off', true), " +
        "set_config('enable_nestloop', 'off', true), set_config('jit', 'off', true) from p",
    )
  ).rows[0]
  try {
    return await fn()
  } finally {
    // After an error the transaction is aborted and this fails too; the original error wins.
    await db
      .query(
        "select set_config('enable_seqscan', $1, true), set_config('enable_nestloop', $2, true), set_config('jit', $3, true)",
        [String(prev?.seq ?? 'on'), String(prev?.nl ?? 'on'), String(prev?.jit ?? 'on')],
      )
      .catch(() => {})
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
