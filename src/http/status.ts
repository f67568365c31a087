import type { TenancyErrorCode } from '../errors/index.js'

const STATUS: Readonly<Record<TenancyErrorCode, number>> = Object.freeze({
  MISSING_TENANT: 400,
  INVALID_TENANT_ID: 400,
  INVALID_INPUT: 400,
  TENANT_FORBIDDEN: 403,
  TENANT_SUSPENDED: 403,
  TENANT_NOT_FOUND: 404,
  DUPLICATE_TENANT: 409,
  DATABASE_UNREACHABLE: 503,
  DATABASE_UNAVAILABLE: 503,
  TENANT_MIGRATING: 503,
  CROSS_TENANT_WRITE: 500,
  UNSUPPORTED_QUERY: 500,
  CONFIG_ERROR: 500,
  UNSAFE_ROLE: 500,
  MIGRATION_ERROR: 500,
  LIFECYCLE_ERROR: 500,
  JOB_REJECTED: 500,
  AUDIT_FAILED: 500,
})

/**
 * The HTTP status a response answers with for a `TenancyError` code: 400 for
 * input the client can fix, 403 forbidden or suspended, 404 unknown tenant,
 * 409 duplicate, 503 database unreachable or unavailable
 * (pool full, connection lost, timeout) or a tenant being cut over by an online migration, 500 for the rest (a server fault).
 */
export function httpStatusOf(error: { readonly code: string }): number {
  return STATUS[error.code as TenancyErrorCode] ?? 500
}
