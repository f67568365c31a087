import type pg from 'pg'
import { DatabaseUnreachableError } from '../errors/index.js'

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  '57P03', // cannot_connect_now: the server is starting up or shutting down
])

/**
 * Whether an error means the server could not be reached at all (as opposed
 * to an SQL error).
 *
 * @example
 * ```ts
 * isUnreachable(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })) // true
 * ```
 */
export function isUnreachable(err: unknown): boolean {
  const e = err as { code?: string; message?: string } | undefined
  if (!e) return false
  if (e.code && NETWORK_CODES.has(e.code)) return true
  return /timeout exceeded when trying to connect|Connection terminated due to connection timeout/i.test(
    e.message ?? '',
  )
}

/**
 * Describes a pool's target without its password, e.g. `postgres@127.0.0.1:5432/app`.
 *
 * @example
 * ```ts
 * describePool(pool) // 'app@db.internal:5432/app'
 * ```
 */
export function describePool(pool: pg.Pool): string {
  const o = (pool as unknown as { options?: pg.PoolConfig }).options ?? {}
  if (o.connectionString) {
    try {
      const u = new URL(o.connectionString)
      if (u.password) u.password = '***'
      return u.toString()
    } catch {
      return '(the configured server)'
    }
  }
  const host = o.host ?? process.env.PGHOST ?? 'localhost'
  const port = o.port ?? process.env.PGPORT ?? 5432
  return `${o.user ?? process.env.PGUSER ?? ''}@${host}:${port}/${o.database ?? process.env.PGDATABASE ?? ''}`
}

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
