import type { TableKeyedElsewhere } from '../schema/rls-apply.js'
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
 * const findings = await checkTablesFound(pool, tables, 'tenant_id', keyedElsewhere)
 * ```
 */
export async function checkTablesFound(
  db: Queryable,
  tables: readonly TableFacts[],
  tenantColumn: string,
  keyedElsewhere: readonly TableKeyedElsewhere[],
): Promise<Finding[]> {
  if (tables.length > 0) return []
  const { rows } = await db.query('select pg_catalog.current_database() as name')
  const database = JSON.stringify(rows[0].name)
  const other = keyedElsewhere.slice(0, 10)
  const skipped =
    other.length === 0
      ? ''
      : ` Tables whose ${JSON.stringify(tenantColumn)} is only a foreign key into another table than ` +
        `tenants are not counted as tenant-aware: ${other.map((t) => `${t.qualified} (-> ${t.references})`).join(', ')}.`
  return [
    finding(
      'NO_TENANT_TABLES',
      `database ${database}`,
      `No tenant-aware tables to work on: no table of database ${database} has a ` +
        `${JSON.stringify(tenantColumn)} column that is a tenant key (schemas looked in: every schema but pg_catalog, ` +
        `information_schema and pg_*; rowtenancy's own tables aside).${skipped} Nothing was checked.`,
      "Check that the connection (`databaseUrl`, or `adminDatabaseUrl`) names the app's database " +
        'and `tenantColumn` its tenant column, run your migrations (or rowtenancy ' +
        'migrate-to-row-tenancy) first, or name the tables with `tables`.',
    ),
  ]
}

/**
 * `TENANT_COLUMN_KEYS_OTHER_TABLE` for each table that has the tenant column but
 * is not counted as tenant-aware because that column alone is a foreign key into
 * another table than `tenants` (see `discoverTenantTables`): `rls enable` gives
 * it no policy and the shell does not filter it, so if it holds tenant data every
 * tenant reads all of it. `keyedElsewhere` is empty when the tables were named,
 * not discovered; none are reported when no table was found (`NO_TENANT_TABLES`
 * names them then).
 *
 * @internal
 */
export function checkTablesLeftOut(
  tables: readonly TableFacts[],
  tenantColumn: string,
  keyedElsewhere: readonly TableKeyedElsewhere[],
): Finding[] {
  if (tables.length === 0) return []
  const column = JSON.stringify(tenantColumn)
  return keyedElsewhere.map((t) => {
    const table = t.qualified
    return finding(
      'TENANT_COLUMN_KEYS_OTHER_TABLE',
      table,
      `${table} has the tenant column ${column}, but it is only a foreign key into ${t.references}, not into ` +
        'tenants, so the table is not counted as tenant-aware: `rls enable` gives it no policy, the shell does ' +
        'not filter it, and this audit checked nothing else of it. If it holds tenant data, every tenant reads ' +
        'all of it.',
      `If its rows belong to tenants, make ${column} a key into tenants, or name the table in \`tables\`, ` +
        'then run rowtenancy rls enable. If it is a registry read before a tenant ' +
        "is known (django-tenants' customers_domain), drop it once migrated or keep it out of the runtime " +
        "role's reach.",
    )
  })
}
