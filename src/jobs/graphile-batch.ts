// graphile-worker batch jobs (array payloads) under the rowtenancy envelope.
import { InvalidInputError } from '../errors/index.js'

/**
 * Refuses an array payload with a `jobKey`. graphile-worker merges the arrays
 * of two jobs added under one key (a batch job's entries pile up); a sealed
 * job's payload is an envelope, so the second job would replace the first and
 * its entries would be lost. Without a key an array payload is a batch job as
 * usual (see `tenantTaskList`).
 *
 * @internal
 */
export function refuseBatchMerge(
  identifier: string,
  payload: unknown,
  spec: Record<string, unknown>,
) {
  if (!Array.isArray(payload) || spec.jobKey === undefined || spec.jobKey === null) return
  throw new InvalidInputError(
    `A job of task ${JSON.stringify(identifier)} with an array payload and a jobKey is refused: graphile-worker ` +
      "would merge it into the key's waiting job, but a rowtenancy job's payload is an envelope, so it would " +
      'replace that job and its entries would be lost. Add the entries without a jobKey, or as an object payload.',
  )
}

/**
 * A batch job's outcome, as graphile-worker reads it for an array payload: a
 * handler may return one promise per entry, and a rejected one fails the job.
 * graphile-worker sees the envelope, not the array, so it would take such a
 * result as success and the failed entries would be lost; here they fail the
 * job, which is retried whole (its entries that succeeded run again).
 *
 * @internal
 */
export async function settleBatch(payload: unknown, result: unknown): Promise<unknown> {
  const value = await result
  if (!Array.isArray(payload) || !Array.isArray(value) || value.length !== payload.length) {
    return value
  }
  const settled = await Promise.allSettled(value)
  const errors = settled.flatMap((r) => (r.status === 'rejected' ? [r.reason] : []))
  if (errors.length === 0) return value
  const messages = errors.map((e) => (e instanceof Error ? e.message : String(e)))
  throw new AggregateError(errors, `Batch failures:\n${messages.join('\n')}`)
}
