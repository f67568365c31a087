/**
 * `rowtenancy/kysely`: the Kysely plugin that scopes every query to the current
 * tenant, the table registry it reads, and the audit log of cross-tenant work.
 * `createTenancy` is also reachable here (it lives in the main entry).
 *
 * @module
 */
export {
  type AuditContext,
  type AuditEvent,
  type AuditLogger,
  type AuditSource,
  auditLogDdl,
  installAuditLog,
  statementFingerprint,
} from '../audit/index.js'
export { TenantPlugin, type TenantPluginOptions } from '../kysely/tenant-plugin.js'
export {
  type TableInput,
  TableRegistry,
  type TenantTable,
  type TenantTableSpec,
} from '../schema/table-registry.js'
export { createTenancy, type Tenancy, type TenancyOptions } from '../tenancy/index.js'
