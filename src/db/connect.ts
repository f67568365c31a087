import type pg from 'pg'
import { DatabaseUnreachableError } from '../errors/index.js'
import { describePool, isUnreachable } from '../sql/acquire.js'

/**
 * Runs `fn` (a connect or a first query) and turns "server not reachable"
 * errors into a `DatabaseUnreachableError` naming the server and what to check.
 *
 * @example
 * ```ts
 * const client = await explainUnreachable(pool, () => pool.connect())
 * ```
 */
export async function explainUnreachable<T>(pool: pg.Pool, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    if (isUnreachable(err)) throw new DatabaseUnreachableError(describePool(pool), { cause: err })
    throw err
  }
}
