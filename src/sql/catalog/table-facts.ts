import { type Queryable, selectRows } from '../queryable.js'
import type { TableFacts } from './model.js'
import { TABLE_FACTS, type TableFactsRow } from './queries.js'

/**
 * Loads the facts of the named tables (`schema.table` or `table`, resolved
 * through the search path); names that resolve to nothing are returned apart.
 */
export async function loadTableFacts(
  db: Queryable,
  names: readonly string[],
  tenantColumn: string,
): Promise<{ tables: TableFacts[]; missing: string[] }> {
  const rows = await selectRows<TableFactsRow>(db, TABLE_FACTS, [names, tenantColumn])
  const tables: TableFacts[] = []
  const missing: string[] = []
  const seen = new Set<number>()
  for (const r of rows) {
    if (r.oid === null) {
      missing.push(r.input)
      continue
    }
    if (seen.has(r.oid)) continue
    seen.add(r.oid)
    tables.push({
      oid: r.oid,
      schema: r.schema,
      name: r.name,
      qualified: `${r.schema}.${r.name}`,
      quoted: r.quoted,
      rlsEnabled: r.enabled,
      rlsForced: r.forced,
      tenantAttnum: r.attnum,
      tenantNotNull: Boolean(r.notnull),
      tenantType: r.type,
    })
  }
  return { tables, missing }
}
