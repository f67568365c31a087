/**
 * `rowtenancy/lifecycle`: one tenant as a unit of operations. Export it to a
 * portable, checksummed archive, import it (under another id, or replacing
 * it), erase it with a certificate, or move it to another database (resumable,
 * placement switched). The CLI commands `tenants export|import|erase|move` are
 * thin shells over these functions.
 *
 * @example
 * ```ts
 * import { exportTenant, importTenant } from 'rowtenancy/lifecycle'
 * await exportTenant({ db: pool, tenantId: '7', out: 'acme.rtar' })
 * await importTenant({ db: otherPool, in: 'acme.rtar', asTenantId: '42' })
 * ```
 * @module
 */

export { LifecycleError } from '../errors/index.js'
export {
  type ArchiveManifest,
  type EraseOptions,
  type ErasureCertificate,
  type ExportOptions,
  type ExportResult,
  eraseTenant,
  exportTenant,
  type ImportOptions,
  type ImportResult,
  importTenant,
  type LayoutOptions,
  type LifecycleEvent,
  type LifecycleListener,
  type LifecycleOp,
  type LifecycleTable,
  type ManifestTable,
  type ManifestTenant,
  MOVE_LEDGER,
  type MoveEntry,
  type MoveOptions,
  type MoveResult,
  type MoveState,
  moveTenant,
  readArchiveManifest,
  schemaFingerprint,
  type TableChecksum,
  type TenantLayout,
  tenantChecksums,
  tenantTables,
} from '../lifecycle/index.js'
