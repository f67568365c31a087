import { InvalidInputError } from '../errors/index.js'
import { unavailableReason } from '../sql/unavailable.js'

/** How long a job failure that means "database unavailable" is held by default, in ms. */
export const DEFAULT_UNAVAILABLE_HOLD_MS = 30_000

/**
 * When `err` means the database is unavailable, waits (backing off from 100 ms
 * to 2 s) until `probe` succeeds or `holdMs` passed; returns at once otherwise.
 * pg-boss 10 and graphile-worker 0.17 write a job's failure once, without
 * retrying a refused or lost connection: pg-boss then throws it uncaught (the
 * process crashes) and graphile-worker leaves the job locked for 4 hours. Held
 * until the database answers, the failure is written and the job retried by
 * the queue's rules.
 *
 * @internal
 */
export async function holdWhileUnavailable(
  err: unknown,
  probe: () => Promise<unknown>,
  holdMs: number,
): Promise<void> {
  if (holdMs <= 0 || unavailableReason(err) === undefined) return
  const until = Date.now() + holdMs
  for (let delay = 100; Date.now() < until; delay = Math.min(delay * 2, 2_000)) {
    try {
      await probe()
      return
    } catch {
      await new Promise((r) => setTimeout(r, Math.min(delay, Math.max(0, until - Date.now()))))
    }
  }
}

/** Checks an `unavailableHoldMs` option. @internal */
export function holdOption(value: number | undefined): number {
  const holdMs = value ?? DEFAULT_UNAVAILABLE_HOLD_MS
  if (!Number.isSafeInteger(holdMs) || holdMs < 0) {
    throw new InvalidInputError(
      `unavailableHoldMs must be a whole number of milliseconds (0 or more), not ${String(holdMs)}.`,
    )
  }
  return holdMs
}
