import type { Queryable } from '../sql/queryable.js'
import { LEDGER_TABLE, type LedgerEntry } from './ledger.js'
import type { MigrationPlan, MigrationPlanOptions, TenantPlan } from './plan.js'

/** Where the legacy tenants were looked for, as the options name it. */
function sourceLooked(options: Pick<MigrationPlanOptions, 'source'>): string {
  const s = options.source ?? {}
  if (s.schemaPattern !== undefined && s.legacyTenantsTable === undefined) {
    return `no schema matches the pattern ${JSON.stringify(s.schemaPattern)}`
  }
  const table =
    s.legacyTenantsTable ??
    `the table found by its "${s.legacySchemaColumn ?? 'schema_name'}" column`
  return `the legacy tenants table (${table}) names no tenant`
}

/**
 * What a verification that found no tenant at all did not find, and what to do:
 * no legacy tenant in the source and no migrated one in the ledger, so nothing
 * was compared and "ok" would only say that. Undefined when there is a tenant.
 *
 * @internal
 */
export async function nothingToVerify(
  db: Queryable,
  plan: MigrationPlan,
  options: Pick<MigrationPlanOptions, 'source'>,
  found: { readonly items: readonly unknown[]; readonly missing: readonly unknown[] },
): Promise<string | undefined> {
  if (found.items.length > 0 || found.missing.length > 0) return undefined
  const { rows } = await db.query('select pg_catalog.current_database() as name')
  const database = JSON.stringify(rows[0].name)
  return (
    `No tenant to verify in database ${database}: ${sourceLooked(options)}, and the ledger ` +
    `${plan.targetSchema}.${LEDGER_TABLE} holds no migrated tenant. Nothing was compared. ` +
    'Check that the connection (`databaseUrl`, or `adminDatabaseUrl`) names the migrated database and the ' +
    'source options (`legacyTenantsTable`, `schemaPattern`) and `targetSchema` its tenants, run ' +
    'rowtenancy migrate-to-row-tenancy first, or pass `allowEmpty` (--allow-empty) when no tenant is expected.'
  )
}

/**
 * What a migrated tenant's verification would leave unchecked: a ledger entry
 * recording no table (nothing to compare), or tables of its schema the
 * migration did not copy (made after it): `drop-schemas` would drop them unseen.
 *
 * @internal
 */
export function uncheckedTables(
  tp: TenantPlan,
  entry: LedgerEntry,
  targetSchema: string,
): string[] {
  const recorded = Object.keys(entry.tables)
  if (recorded.length === 0) {
    return [
      `the ledger entry of tenant ${entry.tenantId} records no table: nothing was compared, so nothing shows ` +
        `its rows were migrated. Check that ${JSON.stringify(entry.schema)} holds the tables it should, delete ` +
        `the tenant's row of ${targetSchema}.${LEDGER_TABLE} and migrate it again (an empty schema: drop it by hand)`,
    ]
  }
  if (entry.state !== 'done') return []
  return tp.allTables
    .filter((name) => !recorded.includes(name))
    .map(
      (name) =>
        `${entry.schema}.${name} is not in the tenant's ledger entry (made after the migration?): it was not ` +
        'compared. Give the shared tables its table and migrate the tenant again (rowtenancy rollback ' +
        '--tenant-id, then migrate-to-row-tenancy), or move the table out of the schema',
    )
}
