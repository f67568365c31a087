import type { TableFacts } from '../sql/catalog/index.js'
import type { Queryable } from '../sql/queryable.js'
import { type Finding, finding } from './findings.js'

/**
 * `NO_TENANT_TABLES` when the audit found no tenant-aware table at all: every
 * other check then looked at nothing, and "no findings" would read as "isolated".
 * Usually the wrong database or tenant column, or the migration has not run yet.
 * The finding names the database, the schemas looked in and the column.
 *
 * @internal
 * @example
 * ```ts
 * const findings = await checkTablesFound(pool, tables, 'tenant_id')
 * ```
 */
export async function checkTablesFound(
  db: Queryable,
  tables: readonly TableFacts[],
  tenantColumn: string,
): Promise<Finding[]> {
  if (tables.length > 0) return []
  const { rows } = await db.query('select pg_catalog.current_database() as name')
  const database = JSON.stringify(rows[0].name)
  return [
    finding(
      'NO_TENANT_TABLES',
      `database ${database}`,
      `No tenant-aware tables to work on: no table of database ${database} has a ` +
        `${JSON.stringify(tenantColumn)} column (schemas looked in: every schema but pg_catalog, ` +
        "information_schema and pg_*; rowtenancy's own tables aside). Nothing was checked.",
      "Check that the connection (`databaseUrl`, or `adminDatabaseUrl`) names the app's database " +
        'and `tenantColumn` its tenant column, run your migrations (or rowtenancy ' +
        'migrate-to-row-tenancy) first, or name the tables with `tables`.',
    ),
  ]
}
