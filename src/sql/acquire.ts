import type pg from 'pg'
import {
  DatabaseUnavailableError,
  DatabaseUnreachableError,
  InvalidInputError,
} from '../errors/index.js'
import { type ConnectableQueryable, isConnectionError, type Queryable } from './queryable.js'
import { hidePasswords } from './redact.js'
import { CONNECT_FAILURE_CODES } from './socket-errors.js'
import { asUnavailable, unavailableReason } from './unavailable.js'

/** The default acquire timeout, in milliseconds. @example `DEFAULT_ACQUIRE_MS // 5000` */
export const DEFAULT_ACQUIRE_MS = 5_000

/**
 * An `acquireMs` option checked: a whole number of milliseconds from 0 (wait
 * forever) to 24 h, {@link DEFAULT_ACQUIRE_MS} when left out; else an
 * `InvalidInputError` naming `where`.
 *
 * @internal
 * @example
 * ```ts
 * acquireMsOption(undefined, 'TenantStore acquireMs') // 5000
 * ```
 */
export function acquireMsOption(value: unknown, where: string): number {
  if (value === undefined) return DEFAULT_ACQUIRE_MS
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 86_400_000) {
    throw new InvalidInputError(
      `${where} must be a whole number of milliseconds from 0 to 86400000, got ${JSON.stringify(value)}.`,
    )
  }
  return value
}

/**
 * Checks out a client of `pool`, waiting at most `acquireMs` (0: no limit).
 * A checkout that times out fails with `DatabaseUnavailableError` (reason
 * `pool-timeout`, naming the pool's size and queue); the client that arrives
 * after that is released straight back. Connect errors become
 * `DatabaseUnavailableError` too.
 *
 * @internal
 * @example
 * ```ts
 * const client = await acquire(pool, 2_000)
 * ```
 */
export function acquire(pool: pg.Pool, acquireMs: number): Promise<pg.PoolClient> {
  // pg-pool's callback form: one promise per checkout (this one), none inside pg-pool.
  // An idle client and no queue: the checkout cannot wait, so no timer on the hot path.
  const timed = acquireMs > 0 && !(pool.idleCount > 0 && pool.waitingCount === 0)
  return new Promise<pg.PoolClient>((resolve, reject) => {
    let late = false
    const timer = timed
      ? setTimeout(() => {
          late = true
          reject(poolTimeout(pool, acquireMs))
        }, acquireMs)
      : undefined
    let settled = false
    const take = (err: unknown, client: pg.PoolClient | undefined, done?: (e?: Error) => void) => {
      if (settled) return
      settled = true
      if (timer !== undefined) clearTimeout(timer)
      if (err || !client) {
        if (!late) reject(connectError(pool, err))
        return
      }
      if (late) (done ?? ((e?: Error) => client.release(e)))()
      else resolve(guardClient(client))
    }
    try {
      // A pool that only has the promise form (a router, a wrapper) ignores the callback
      // and returns a promise: take the client from that instead.
      const returned: unknown = pool.connect(take as Parameters<pg.Pool['connect']>[0])
      if (isThenable(returned)) {
        returned.then(
          (client) => take(undefined, client as pg.PoolClient),
          (err: unknown) => take(err, undefined),
        )
      }
    } catch (err) {
      take(err, undefined)
    }
  })
}

/**
 * `db` with every checkout bounded by `acquireMs`, for the lookups and writes
 * that take a pool as a plain {@link Queryable} (the tenant store, the
 * placement and serving maps, the audit writer). On a pool (anything that
 * hands out clients with `connect()`), `query` checks a client out through
 * {@link acquire}, runs the statement on it and releases it, and `connect` is
 * `acquire`: a full pool or a server that does not answer the connect fails
 * with `DatabaseUnavailableError` after `acquireMs` instead of waiting for
 * good. Anything else (a `pg.Client`, a checked-out client, a stub) and
 * `acquireMs` 0 give `db` back as it is.
 *
 * @internal
 * @example
 * ```ts
 * const db = boundedQueryable(pool, 2_000)
 * await db.query('select 1') // DatabaseUnavailableError (pool-timeout) after 2 s on a full pool
 * ```
 */
export function boundedQueryable(db: Queryable, acquireMs: number): Queryable {
  if (acquireMs <= 0 || !isCheckoutPool(db)) return db
  const pool = db as unknown as pg.Pool
  const bounded: ConnectableQueryable = {
    connect: () => acquire(pool, acquireMs),
    async query(text, values) {
      const client = await acquire(pool, acquireMs)
      let failed: unknown
      try {
        return await client.query(text, values)
      } catch (err) {
        failed = err
        throw err
      } finally {
        // A broken connection is discarded; after an SQL error the connection is fine.
        client.release(failed instanceof Error && isConnectionError(failed) ? failed : undefined)
      }
    },
  }
  return Object.freeze(bounded)
}

/** A pool: hands out clients with `connect()`; a `pg.Client` (checked out or not) connects itself. */
function isCheckoutPool(db: Queryable): boolean {
  const d = db as Partial<ConnectableQueryable> & { release?: unknown }
  return (
    typeof d.connect === 'function' &&
    typeof d.release !== 'function' &&
    !('connectionParameters' in d)
  )
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as { then?: unknown } | null)?.then === 'function'
}

const guardedClients = new WeakSet<pg.PoolClient>()

/**
 * A checked-out client whose connection breaks between queries (a backend
 * terminated mid-transaction, a restart) emits `error`; with no listener Node
 * crashes the process. The next query on it fails (and the client is then
 * discarded), so the listener only keeps the process alive.
 */
function guardClient(client: pg.PoolClient): pg.PoolClient {
  if (!guardedClients.has(client) && typeof client.on === 'function') {
    guardedClients.add(client)
    client.on('error', ignoreClientError)
  }
  return client
}

function ignoreClientError(): void {}

/** A connect error: unreachable names the server (DATABASE_UNREACHABLE), the rest via asUnavailable. */
function connectError(pool: pg.Pool, err: unknown): unknown {
  if (unavailableReason(err) === 'unreachable' || isUnreachable(err)) {
    return new DatabaseUnreachableError(describePool(pool), { cause: err })
  }
  return asUnavailable(err)
}

function poolTimeout(pool: pg.Pool, ms: number): DatabaseUnavailableError {
  const p = pool as Partial<Pick<pg.Pool, 'totalCount' | 'idleCount' | 'waitingCount'>> & {
    options?: { max?: number }
  }
  return new DatabaseUnavailableError(
    'pool-timeout',
    `No connection of the pool (${describePool(pool)}, max ${p.options?.max ?? 10}, ` +
      `${p.totalCount ?? '?'} open, ${p.waitingCount ?? '?'} waiting) came free within ${ms} ms. ` +
      'The work was not done; retry later. If it persists, the pool is too small for the load, ' +
      'or some work holds connections too long (set timeouts.statementMs).',
  )
}

/** SQLSTATE cannot_connect_now: the server is starting up or shutting down. */
const CANNOT_CONNECT_NOW = '57P03'

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
  if (e.code && (CONNECT_FAILURE_CODES.has(e.code) || e.code === CANNOT_CONNECT_NOW)) return true
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
  if (o.connectionString) return hidePasswords(o.connectionString)
  const host = o.host ?? process.env.PGHOST ?? 'localhost'
  const port = o.port ?? process.env.PGPORT ?? 5432
  return `${o.user ?? process.env.PGUSER ?? ''}@${host}:${port}/${o.database ?? process.env.PGDATABASE ?? ''}`
}
