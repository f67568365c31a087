import type { RowtenancyConfig } from '../config/index.js'
import type { MigrationPlanOptions } from '../migrate/plan.js'

/** The config keys every migration command reads. */
export const SOURCE_KEYS = [
  'databaseUrl',
  'adminDatabaseUrl',
  'tenantsSchema',
  'targetSchema',
  'tenantColumn',
  'legacyTenantsTable',
  'legacySchemaColumn',
  'legacyIdColumn',
  'legacyDomainsTable',
  'schemaPattern',
] as const

/** Collects a repeatable flag. */
export const collect = (value: string, previous: string[] = []) => [...previous, value]

/** The source/target part of the engine options, from the merged config. */
export function planOptionsFrom(config: RowtenancyConfig): MigrationPlanOptions {
  return {
    targetSchema: config.targetSchema,
    tenantsSchema: config.tenantsSchema,
    tenantColumn: config.tenantColumn,
    source: {
      ...(config.legacyTenantsTable ? { legacyTenantsTable: config.legacyTenantsTable } : {}),
      legacySchemaColumn: config.legacySchemaColumn,
      legacyIdColumn: config.legacyIdColumn,
      ...(config.legacyDomainsTable ? { legacyDomainsTable: config.legacyDomainsTable } : {}),
      ...(config.schemaPattern ? { schemaPattern: config.schemaPattern } : {}),
    },
  }
}
