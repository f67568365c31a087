import { type AuditLogger, AuditWriter } from '../audit/index.js'
import { ConfigError } from '../errors/index.js'
import { boundedQueryable, DEFAULT_ACQUIRE_MS } from '../sql/acquire.js'
import type { Queryable } from '../sql/index.js'

/**
 * Where job runs on cross-tenant queues and fan-out runs are recorded: the
 * same `audit_log` table `createTenancy` writes (see `installAuditLog`).
 */
export interface JobAuditOptions {
  /** The connection the audit rows are written on (the owner's pool). */
  readonly db: Queryable
  /** The audit table, `audit_log` by default (`schema.table` allowed); `false` to only call `logger`. */
  readonly table?: string | false | undefined
  /** Called with every audit event after it is written. */
  readonly logger?: AuditLogger | undefined
}

/**
 * The audit writer for the jobs layer's options.
 *
 * @internal
 */
export function jobAuditWriter(audit: JobAuditOptions | undefined): AuditWriter | undefined {
  if (audit === undefined) return undefined
  if (audit === null || typeof audit !== 'object' || typeof audit.db?.query !== 'function') {
    throw new ConfigError(
      'audit must be { db, table?, logger? }: db is the pool the audit log is written on.',
    )
  }
  // A full pool fails the write (and so the job, which the queue retries) after the default acquire limit.
  return new AuditWriter({
    db: boundedQueryable(audit.db, DEFAULT_ACQUIRE_MS),
    table: audit.table,
    logger: audit.logger,
  })
}
