import {
  DatabaseUnavailableError,
  TenancyError,
  TenantMigratingError,
  type UnavailableReason,
} from '../errors/index.js'
import { SOCKET_ERROR_CODES } from './socket-errors.js'

/** Node network errors and SQLSTATEs that mean "the server cannot serve this now". */
const REASON_BY_CODE: Readonly<Record<string, UnavailableReason>> = Object.freeze({
  ...SOCKET_ERROR_CODES,
  '57P01': 'connection-lost', // admin_shutdown: pg_terminate_backend, a fast shutdown
  '57P02': 'connection-lost', // crash_shutdown
  '57P03': 'unreachable', // cannot_connect_now: starting up or shutting down
  '57P05': 'connection-lost', // idle_session_timeout
  '57014': 'timeout', // query_canceled: statement_timeout (or a cancel request)
  '55P03': 'timeout', // lock_not_available: lock_timeout
  '25P03': 'timeout', // idle_in_transaction_session_timeout
  '53300': 'overloaded', // too_many_connections
  '08000': 'connection-lost',
  '08003': 'connection-lost',
  '08006': 'connection-lost',
  '08001': 'unreachable',
  // At connect time, a server without the database or the role yet (a fresh failover target
  // still being provisioned) or refusing the password: the app cannot use it now.
  '3D000': 'unreachable',
  '28000': 'unreachable',
  '28P01': 'unreachable',
  '08004': 'unreachable',
  // rowtenancy_enter (online migration): the fence outlasted the wait / the placement changed
  RTF01: 'tenant-migrating',
  RTP01: 'tenant-migrating',
})

/** pg's own messages for a broken or never-made connection (they carry no code). */
const MESSAGES: readonly [RegExp, UnavailableReason][] = [
  [/timeout exceeded when trying to connect|connection timeout/i, 'pool-timeout'],
  [
    /Connection terminated|not queryable|Client was closed|connection is closed/i,
    'connection-lost',
  ],
  [/server closed the connection unexpectedly|terminating connection/i, 'connection-lost'],
  [/query read timeout|Query read timeout/i, 'timeout'],
]

const WHAT: Readonly<Record<UnavailableReason, string>> = Object.freeze({
  unreachable: 'The database cannot be reached',
  'pool-timeout': 'No database connection came free in time',
  'connection-lost': 'The database connection was lost mid-work',
  timeout: 'The database did not finish in time (a statement, lock or transaction timeout)',
  overloaded: 'The database refused more connections',
  'tenant-migrating': 'The tenant is being cut over by an online migration',
})

/**
 * Why `err` means the database cannot serve the work now, or `undefined` for an
 * ordinary SQL error (a constraint, a syntax error, a permission).
 *
 * @example
 * ```ts
 * unavailableReason({ code: '57P01' }) // 'connection-lost' (pg_terminate_backend)
 * unavailableReason({ code: '23505' }) // undefined
 * ```
 */
export function unavailableReason(err: unknown, depth = 0): UnavailableReason | undefined {
  if (err instanceof DatabaseUnavailableError) return err.reason
  const e = err as { code?: unknown; message?: unknown } | null | undefined
  if (!e || typeof e !== 'object') return undefined
  if (typeof e.code === 'string') {
    if (Object.hasOwn(REASON_BY_CODE, e.code)) return REASON_BY_CODE[e.code]
    // Class 08, connection exception (PgBouncer's "server conn crashed?" is 08P01).
    if (e.code.startsWith('08')) return 'connection-lost'
  }
  const message = typeof e.message === 'string' ? e.message : ''
  for (const [pattern, reason] of MESSAGES) if (pattern.test(message)) return reason
  // An ORM's error that wraps the driver's (Prisma, Drizzle): look one level down, twice at most.
  const cause = (e as { cause?: unknown }).cause
  if (cause && cause !== err && depth < 2) return unavailableReason(cause, depth + 1)
  return undefined
}

/**
 * `err` as a {@link DatabaseUnavailableError} when it means the database cannot
 * serve the work now (the original error kept as `cause`, also when it is an
 * ORM's error wrapping the driver's); any other error, and any `TenancyError`,
 * is returned unchanged.
 *
 * @example
 * ```ts
 * try { await pool.query(sql) } catch (err) { throw asUnavailable(err) }
 * ```
 */
export function asUnavailable(err: unknown): unknown {
  // Our own errors keep their code (a MigrationError that wraps a lost connection stays one).
  if (err instanceof TenancyError) return err
  const reason = unavailableReason(err)
  if (reason === undefined) return err
  if (reason === 'tenant-migrating') {
    const code = (err as { code?: unknown }).code
    return new TenantMigratingError(code === 'RTP01' ? 'moved' : 'fenced', { cause: err })
  }
  const why = err instanceof Error && err.message ? ` (${err.message})` : ''
  return new DatabaseUnavailableError(
    reason,
    `${WHAT[reason]}${why}. The work was not done; retry it later. ` +
      'If this persists, check that PostgreSQL is running and reachable, and the pool size and timeouts.',
    { cause: err },
  )
}

/** A pool-like object that may emit `error` (pg.Pool emits one for an idle connection the server dropped). */
interface ErrorEmitter {
  on?(event: 'error', listener: (err: Error) => void): unknown
  listenerCount?(event: 'error'): number
}

const guarded = new WeakSet<object>()

/**
 * Keeps a pool's `error` event from crashing the process: pg.Pool emits it when
 * the server drops an IDLE connection (restart, `pg_terminate_backend`), and an
 * `error` event with no listener is thrown by Node. The pool has already
 * removed that connection and opens a fresh one on the next checkout, so the
 * listener does nothing else. Added once per pool; your own listeners still run.
 *
 * @example
 * ```ts
 * guardPoolErrors(pool) // createTenancy and TenantStore do this for the pools they are given
 * ```
 */
export function guardPoolErrors(pool: unknown): void {
  const p = pool as ErrorEmitter | null | undefined
  if (!p || typeof p !== 'object' || typeof p.on !== 'function' || guarded.has(p)) return
  guarded.add(p)
  p.on('error', ignoreIdleError)
}

function ignoreIdleError(): void {}
