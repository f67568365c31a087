/**
 * `rowtenancy/migrate`: the schema-per-tenant to row-tenancy migration engine as a
 * library. The CLI commands `migrate-to-row-tenancy`, `verify`, `rollback` and
 * `drop-schemas` are thin shells over these functions.
 *
 * @example
 * ```ts
 * import { migrate, verifyMigration, formatReport } from 'rowtenancy/migrate'
 * const report = await migrate({ db: pool, all: true, jobs: 4 })
 * console.log(formatReport(report).join('\n'))
 * ```
 * @module
 */

export { existingSchemas, introspectSchemas, type SchemaTables } from '../sql/catalog/index.js'
export {
  type CheckItem,
  checkTable,
  checkTables,
  describeCheck,
  type TableCheck,
  tenantScoped,
} from './checks.js'
export { type CopyOptions, type CopyResult, copyTenant } from './copy.js'
export {
  existingRowsStatement,
  insertStatement,
  orphanStatement,
  type Statement,
  sourceChecksumStatement,
  targetChecksumStatement,
} from './copy-sql.js'
export { discoverTenants, splitQualified } from './discover.js'
export { compareWithTarget, typesCompatible } from './drift.js'
export { type DropResult, type DropSchemasOptions, dropSchemas } from './drop-schemas.js'
export type { MigrationEvent, MigrationListener } from './events.js'
export { type CopyGuard, chooseGuard } from './guard.js'
export {
  ensureLedger,
  ID_MAP_TABLE,
  LEDGER_TABLE,
  type LedgerEntry,
  type LedgerTable,
  ledgerExists,
  readLedger,
} from './ledger.js'
export { foreignKeyOrder } from './order.js'
export {
  type MigrationPlan,
  type MigrationPlanOptions,
  type PlanOptions,
  planMigration,
  type RemapColumn,
  resolveModel,
  type TablePlan,
  type TenantPlan,
} from './plan.js'
export {
  columnSequences,
  type RemapKey,
  remapKeys,
  remapTables,
  type TableRemap,
} from './remap-keys.js'
export { allocateIds, mapStatements, remapExpression } from './remap-sql.js'
export {
  formatReport,
  type MigrationReport,
  type TableReport,
  type TenantReport,
} from './report.js'
export { type RollbackOptions, type RollbackResult, rollbackTenants } from './rollback.js'
export { type MigrateOptions, migrate } from './run.js'
export { adjustSequences, type SequenceAdjustment } from './sequences.js'
export { type SchemaMapping, typeMismatch } from './type-identity.js'
export type {
  ColumnInfo,
  DriftIssue,
  ForeignKeyInfo,
  IdStrategy,
  SourceOptions,
  SourceTenant,
  TableInfo,
} from './types.js'
export {
  type MissingTenant,
  migratedTenants,
  type TenantVerification,
  type VerificationReport,
  type VerifyOptions,
  verifyMigration,
  verifyTenant,
} from './verify.js'
