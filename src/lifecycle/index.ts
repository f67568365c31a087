export type { TableChecksum } from './checksums.js'
export { tenantChecksums } from './checksums.js'
export { type EraseOptions, type ErasureCertificate, eraseTenant } from './erase.js'
export type { LifecycleEvent, LifecycleListener, LifecycleOp } from './events.js'
export { type ExportOptions, type ExportResult, exportTenant } from './export.js'
export { type ImportOptions, type ImportResult, importTenant } from './import.js'
export type { LayoutOptions } from './layout.js'
export type { ArchiveManifest, ManifestTable, ManifestTenant } from './manifest.js'
export {
  type LifecycleTable,
  schemaFingerprint,
  type TenantLayout,
  tenantTables,
} from './tables.js'
