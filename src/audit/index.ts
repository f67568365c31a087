export type { AuditEvent, AuditLogger, AuditSource } from './audit-event.js'
export {
  AUDIT_LOG_COLUMNS,
  type AuditLogColumn,
  type AuditLogTableOptions,
  auditLogDdl,
  auditTableName,
  installAuditLog,
} from './audit-log-table.js'
export { type AuditContext, AuditWriter, type AuditWriterOptions } from './audit-writer.js'
export { statementFingerprint } from './fingerprint.js'
