/**
 * Which door a cross-tenant statement went through.
 */
export type AuditSource = 'allObjects' | 'withoutTenant'

/**
 * One audited cross-tenant statement, as written to the `audit_log` table and
 * handed to the logger hook.
 *
 * @example
 * ```ts
 * const event: AuditEvent = {
 *   at: new Date(),
 *   source: 'allObjects',
 *   reason: 'monthly revenue report',
 *   actor: 'alice@example.com',
 *   tenantId: undefined,
 *   statement: 'select sum("amount") from "transactions" where "created_at" > $1',
 *   fingerprint: '3f1c0a9b2e4d5f60',
 *   rowCount: 1,
 *   error: undefined,
 * }
 * ```
 */
export interface AuditEvent {
  /** When the statement finished. */
  readonly at: Date
  /** `allObjects` or `withoutTenant`. */
  readonly source: AuditSource
  /** Why the caller needed cross-tenant access. */
  readonly reason: string
  /** Who asked, when known. */
  readonly actor: string | undefined
  /** The tenant in context when the statement ran, if any (canonical text). */
  readonly tenantId: string | undefined
  /** The SQL with every literal replaced by `?` and whitespace collapsed; never parameter values. */
  readonly statement: string
  /** A short stable hash of `statement`, to group equal statements. */
  readonly fingerprint: string
  /** Rows returned or touched; `null` when the statement failed. */
  readonly rowCount: number | null
  /** The error code (SQLSTATE or rowtenancy code) when the statement failed. */
  readonly error: string | undefined
}

/**
 * A hook called with every audit event (after it is written to the table).
 * Throwing from it fails the audited call.
 */
export type AuditLogger = (event: AuditEvent) => void | Promise<void>
