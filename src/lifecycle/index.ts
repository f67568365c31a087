export type { TableChecksum } from './checksums.js'
export { tenantChecksums } from './checksums.js'
export { type EraseOptions, type ErasureCertificate, eraseTenant } from './erase.js'
export type { LifecycleEvent, LifecycleListener, LifecycleOp } from './events.js'
export { type ExportOptions, type ExportResult, exportTenant } from './export.js'
export { type ImportOptions, type ImportResult, importTenant } from './import.js'
export type { LayoutOptions } from './layout.js'
export {
  type ArchiveManifest,
  type ManifestTable,
  type ManifestTenant,
  readArchiveManifest,
} from './manifest.js'
export { type MoveOptions, type MoveResult, moveTenant } from './move.js'
export { MOVE_LEDGER, type MoveEntry, type MoveState } from './move-ledger.js'
export {
  type LifecycleTable,
  schemaFingerprint,
  type TenantLayout,
  tenantTables,
} from './tables.js'
