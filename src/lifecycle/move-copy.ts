import type { Queryable } from '../sql/queryable.js'
import { quoteQualified } from '../sql/quote.js'
import { bindTenant, type TableChecksum, tenantChecksums } from './checksums.js'
import { checkCompatible } from './import.js'
import type { ArchiveManifest } from './manifest.js'
import type { MoveEntry } from './move-ledger.js'
import { type TenantLayout, tenantTables } from './tables.js'

/** The tenant's checksums in `c`'s database, over the archive's tables and columns. @internal */
export async function checksumsAt(
  c: Queryable,
  layout: TenantLayout,
  m: ArchiveManifest,
  tenantId: string,
): Promise<TableChecksum[]> {
  await bindTenant(c, tenantId)
  const { tables } = checkCompatible(m, layout, (await tenantTables(c, layout)).tables)
  return tenantChecksums(c, layout, tenantId, tables)
}

/** Whether `sums` are the manifest's counts and checksums, table by table. @internal */
export function sameAsManifest(m: ArchiveManifest, sums: readonly TableChecksum[]): boolean {
  return m.tables.every((t, i) => sums[i]?.rows === t.rows && sums[i]?.checksum === t.checksum)
}

/**
 * What the tenant's rows at a move's destination are: `none` (no tenant row
 * there, or, in the catalog, one owning no rows), `copy` (the move's own copy:
 * the ledger recorded the import, or they equal the recorded export row for
 * row, an import that committed before the ledger moved on) or `foreign` (rows
 * the move cannot show it wrote: another tenant of that id, which only the
 * move's own undo must never erase).
 *
 * @internal
 */
export async function destinationRows(
  c: Queryable,
  layout: TenantLayout,
  tenantId: string,
  e: Pick<MoveEntry, 'exported' | 'copied'>,
  isCatalog: boolean,
): Promise<'none' | 'copy' | 'foreign'> {
  const row = await c.query(
    `select 1 from ${quoteQualified(layout.tenantsSchema, 'tenants')} where id = $1::${layout.idType}`,
    [tenantId],
  )
  if (row.rows.length === 0) return 'none'
  if (e.copied === true) return 'copy'
  if (e.exported !== undefined) {
    const sums = await checksumsAt(c, layout, e.exported, tenantId)
    if (sameAsManifest(e.exported, sums)) return 'copy'
  }
  if (!isCatalog) return 'foreign'
  await bindTenant(c, tenantId)
  const all = await tenantChecksums(c, layout, tenantId, (await tenantTables(c, layout)).tables)
  return all.every((s) => s.rows === 0) ? 'none' : 'foreign'
}
