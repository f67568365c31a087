import { TenancyError } from '../errors/index.js'

/**
 * Why a job was refused, as a stable word.
 *
 * @example
 * ```ts
 * const reason: JobRejectReason = 'bad-signature'
 * ```
 */
export type JobRejectReason =
  | 'no-tenant'
  | 'malformed'
  | 'payload-tenant'
  | 'bad-signature'
  | 'unknown-queue'
  | 'unknown-tenant'
  | 'suspended'

/**
 * Thrown when a job cannot be enqueued, or is refused at run time and not run
 * as any tenant. The queue then applies its own rules (retry, dead letter), so
 * the job is not lost. `reason` says which check failed; `retryable` is false
 * when a retry cannot change the outcome (a forged signature, a malformed
 * envelope), which BullMQ honours by failing the job at once.
 *
 * @example
 * ```ts
 * // a row inserted into pgboss.job by hand, without the rowtenancy envelope:
 * // JobRejectedError: Job 3f2c... on queue "invoices" was not run: it carries no tenant ...
 * ```
 */
export class JobRejectedError extends TenancyError {
  /** Which check failed. */
  readonly reason: JobRejectReason
  /** Whether retrying the same job may succeed later (suspended, unknown tenant). */
  readonly retryable: boolean

  constructor(reason: JobRejectReason, message: string, options: { cause?: unknown } = {}) {
    super('JOB_REJECTED', message, options)
    this.reason = reason
    this.retryable = reason === 'suspended' || reason === 'unknown-tenant'
  }
}
