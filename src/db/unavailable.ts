import type pg from 'pg'
import { ConfigError, DatabaseUnavailableError, DatabaseUnreachableError } from '../errors/index.js'
import { quoteLiteral } from '../sql/quote.js'
import { asUnavailable, unavailableReason } from '../sql/unavailable.js'
import { describePool, isUnreachable } from './connect.js'
import type { Statement } from './pipelined-query.js'

/**
 * Time limits for tenant work. The three PostgreSQL ones are set per
 * transaction with `set_config(name, value, true)`, sent with the tenant
 * binding (no extra round trip), so they end with the transaction and never
 * reach the next checkout.
 *
 * PostgreSQL lets any role raise these settings again (`SET LOCAL
 * statement_timeout = 0` in raw SQL on the same transaction): they bound
 * well-behaved work and runaway queries, not hostile SQL. For a hard cap, set
 * them on the runtime role as well (`ALTER ROLE app_runtime SET ...`), which is
 * equally changeable, or cap the role's connections (`CONNECTION LIMIT`).
 *
 * @example
 * ```ts
 * createTenancy({ pool, tables, timeouts: { acquireMs: 2_000, statementMs: 5_000, lockMs: 1_000 } })
 * ```
 */
export interface DatabaseTimeouts {
  /**
   * How long a checkout waits for a pooled connection (pool exhausted or server
   * slow to accept) before failing with `DatabaseUnavailableError` (reason
   * `pool-timeout`); 5000 by default, 0 waits forever.
   */
  readonly acquireMs?: number | undefined
  /** `statement_timeout` per statement of tenant work; unset = the server's. */
  readonly statementMs?: number | undefined
  /** `lock_timeout`: how long a statement waits for a lock; unset = the server's. */
  readonly lockMs?: number | undefined
  /** `idle_in_transaction_session_timeout`: a transaction left idle this long is ended by the server. */
  readonly idleInTransactionMs?: number | undefined
}

/** The default acquire timeout, in milliseconds. @example `DEFAULT_ACQUIRE_MS // 5000` */
export const DEFAULT_ACQUIRE_MS = 5_000

const SETTINGS = Object.freeze([
  ['statementMs', 'statement_timeout'],
  ['lockMs', 'lock_timeout'],
  ['idleInTransactionMs', 'idle_in_transaction_session_timeout'],
] as const)

const KEYS = new Set(['acquireMs', ...SETTINGS.map(([key]) => key)])

/**
 * Checks a {@link DatabaseTimeouts} object (whole milliseconds, 0 to 24 h) and
 * returns it frozen with the acquire default filled in.
 *
 * @internal
 * @example
 * ```ts
 * resolveTimeouts({ statementMs: 5000 }) // { acquireMs: 5000, statementMs: 5000 }
 * ```
 */
export function resolveTimeouts(
  input: DatabaseTimeouts | undefined,
  where = 'timeouts',
): Readonly<DatabaseTimeouts> & { readonly acquireMs: number } {
  if (
    input !== undefined &&
    (input === null || typeof input !== 'object' || Array.isArray(input))
  ) {
    throw new ConfigError(`${where} must be an object such as { statementMs: 5000 }.`)
  }
  const out: Record<string, number> = { acquireMs: DEFAULT_ACQUIRE_MS }
  for (const [key, value] of Object.entries(input ?? {})) {
    if (!KEYS.has(key)) {
      throw new ConfigError(
        `Unknown ${where} key ${JSON.stringify(key)}; known: ${[...KEYS].join(', ')}.`,
      )
    }
    if (value === undefined) continue
    if (!Number.isInteger(value) || value < 0 || value > 86_400_000) {
      throw new ConfigError(
        `${where}.${key} must be a whole number of milliseconds from 0 to 86400000, got ${JSON.stringify(value)}.`,
      )
    }
    out[key] = value
  }
  return Object.freeze(out) as Readonly<DatabaseTimeouts> & { readonly acquireMs: number }
}

/**
 * The `set_config` bind statement with the PostgreSQL timeouts appended to the
 * same SELECT (one statement, still one bound parameter: the tenant id).
 * Without timeouts the statement is returned as is.
 *
 * @internal
 * @example
 * ```ts
 * withTimeouts(bind, { statementMs: 5000 })
 * // select pg_catalog.set_config('rowtenancy.tenant_id', $1, true), pg_catalog.set_config('statement_timeout', '5000', true)
 * ```
 */
export function withTimeouts(bind: Statement, timeouts: DatabaseTimeouts | undefined): Statement {
  const parts: string[] = []
  for (const [key, name] of SETTINGS) {
    const value = timeouts?.[key]
    if (value !== undefined) {
      parts.push(
        `pg_catalog.set_config(${quoteLiteral(name)}, ${quoteLiteral(String(value))}, true)`,
      )
    }
  }
  if (parts.length === 0) return bind
  if (!/^select /i.test(bind.text)) {
    throw new ConfigError(
      'timeouts (statementMs, lockMs, idleInTransactionMs) need the set_config or sealed binding; ' +
        "with binding 'set_local' (Citus) set them on the runtime role instead " +
        '(ALTER ROLE app_runtime SET statement_timeout = ...).',
    )
  }
  return Object.freeze({ ...bind, text: `${bind.text}, ${parts.join(', ')}` })
}

/**
 * Whether `timeouts` sets any PostgreSQL setting (the bind then carries them).
 *
 * @internal
 * @example
 * ```ts
 * carriesTimeouts({ acquireMs: 100 }) // false
 * ```
 */
export function carriesTimeouts(timeouts: DatabaseTimeouts | undefined): boolean {
  return SETTINGS.some(([key]) => timeouts?.[key] !== undefined)
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

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as { then?: unknown } | null)?.then === 'function'
}

/**
 * Throws `err` as a `DatabaseUnavailableError` when it means the database cannot
 * serve the work now; any other error unchanged.
 *
 * @internal
 * @example
 * ```ts
 * await client.query(sql).catch(rethrowUnavailable)
 * ```
 */
export function rethrowUnavailable(err: unknown): never {
  throw asUnavailable(err)
}

const guardedClients = new WeakSet<pg.PoolClient>()

/**
 * A checked-out client whose connection breaks between queries (a backend
 * terminated mid-transaction, a restart) emits `error`; with no listener Node
 * crashes the process. The next query on it fails (and the client is then
 * discarded), so the listener only keeps the process alive.
 */
function guardClient(client: pg.PoolClient): pg.PoolClient {
  if (!guardedClients.has(client)) {
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
