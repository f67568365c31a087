import type { TableFacts } from '../sql/catalog/index.js'
import type { Queryable } from '../sql/queryable.js'
import { type Finding, finding } from './findings.js'

/**
 * Tables with the tenant column that discovery leaves out because the column alone is a
 * foreign key into another table than `tenants` (see `discoverTenantTables`), first 10.
 */
const KEYED_ELSEWHERE = `
select format('%I.%I (-> %s)', n.nspname, c.relname, ref.relname) as name
  from pg_class c
  join pg_namespace n on n.oid = c.relnamespace
  join pg_attribute a on a.attrelid = c.oid and a.attname = $1 and a.attnum > 0 and not a.attisdropped
  join pg_constraint fk on fk.conrelid = c.oid and fk.contype = 'f' and fk.conkey = array[a.attnum]
  join pg_class ref on ref.oid = fk.confrelid and ref.relname <> 'tenants'
 where c.relkind in ('r', 'p')
   and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_%'
 order by 1
 limit 10`

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
  const { rows: other } = await db.query(KEYED_ELSEWHERE, [tenantColumn])
  const skipped =
    other.length === 0
      ? ''
      : ` Tables whose ${JSON.stringify(tenantColumn)} is only a foreign key into another table than ` +
        `tenants are not counted as tenant-aware: ${other.map((r) => r.name as string).join(', ')}.`
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
