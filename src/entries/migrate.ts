/**
 * `rowtenancy/migrate`: the schema-per-tenant to row-tenancy migration engine as
 * a library. The CLI commands `migrate-to-row-tenancy`, `verify`, `rollback` and
 * `drop-schemas` are thin shells over these functions.
 *
 * @example
 * ```ts
 * import { migrate, formatReport } from 'rowtenancy/migrate'
 * const report = await migrate({ db: pool, all: true, jobs: 4 })
 * console.log(formatReport(report).join('\n'))
 * ```
 * @module
 */
export {
  adjustSequences,
  type CheckItem,
  type ColumnInfo,
  type CopyGuard,
  type CopyOptions,
  type CopyResult,
  checkTable,
  checkTables,
  chooseGuard,
  compareWithTarget,
  copyTenant,
  type DriftIssue,
  type DropResult,
  type DropSchemasOptions,
  describeCheck,
  discoverTenants,
  dropSchemas,
  ensureLedger,
  type ForeignKeyInfo,
  foreignKeyOrder,
  formatReport,
  ID_MAP_TABLE,
  type IdStrategy,
  LEDGER_TABLE,
  type LedgerEntry,
  type LedgerTable,
  ledgerExists,
  type MigrateOptions,
  type MigrationEvent,
  type MigrationListener,
  type MigrationPlan,
  type MigrationPlanOptions,
  type MigrationReport,
  type MissingTenant,
  migrate,
  migratedTenants,
  type PlanOptions,
  planMigration,
  type RemapColumn,
  type RollbackOptions,
  type RollbackResult,
  readLedger,
  resolveModel,
  rollbackTenants,
  type SequenceAdjustment,
  type SourceOptions,
  type SourceTenant,
  type TableCheck,
  type TableInfo,
  type TablePlan,
  type TableReport,
  type TenantPlan,
  type TenantReport,
  type TenantVerification,
  type VerificationReport,
  type VerifyOptions,
  verifyMigration,
  verifyTenant,
} from '../migrate/index.js'
export {
  CHANGELOG_TABLE,
  type FenceStats,
  migrateOnline,
  type OnlineEvent,
  type OnlineOptions,
  type OnlinePhase,
  type OnlineReport,
  type OnlineRollbackOptions,
  type OnlineTenantReport,
  rollbackOnline,
} from '../migrate/online/index.js'
export { existingSchemas, introspectSchemas, type SchemaTables } from '../sql/catalog/index.js'
