import { ConfigError } from '../errors/index.js'
import { DEFAULT_ACQUIRE_MS } from '../sql/acquire.js'
import { quoteLiteral } from '../sql/quote.js'
import { asUnavailable } from '../sql/unavailable.js'
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
