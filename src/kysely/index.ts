export {
  type AuditContext,
  type AuditEvent,
  type AuditLogger,
  type AuditSource,
  auditLogDdl,
  installAuditLog,
  statementFingerprint,
} from '../audit/index.js'
export {
  type TableInput,
  TableRegistry,
  type TenantTable,
  type TenantTableSpec,
} from '../schema/table-registry.js'
export { createTenancy, type Tenancy, type TenancyOptions } from '../tenancy/index.js'
export { TenantPlugin, type TenantPluginOptions } from './tenant-plugin.js'
