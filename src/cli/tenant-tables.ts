import { ConfigError } from '../errors/index.js'
import type { Queryable } from '../sql/queryable.js'

/**
 * Throws a `ConfigError` when a command that looked for the tenant-aware tables
 * (every table with the tenant column) found none: it would have done nothing,
 * or reported "all is well" about nothing. The message names the database and
 * the column and says what to do.
 *
 * @example
 * ```ts
 * await assertTenantTablesFound(pool, tables, 'rls status', config.tenantColumn)
 * ```
 */
export async function assertTenantTablesFound(
  db: Queryable,
  found: readonly unknown[],
  command: string,
  tenantColumn: string,
): Promise<void> {
  if (found.length > 0) return
  const { rows } = await db.query('select pg_catalog.current_database() as name')
  throw new ConfigError(
    `${command}: no tenant-aware tables to work on: no table of database ${JSON.stringify(rows[0].name)} ` +
      `has a ${JSON.stringify(tenantColumn)} column (rowtenancy's own tables aside). ` +
      "Check that --database-url (or --admin-database-url) names the app's database and " +
      '--tenant-column its tenant column, run your migrations (or rowtenancy migrate-to-row-tenancy) ' +
      'first, or name the tables with --tables a,b.',
  )
}
