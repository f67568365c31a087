import type pg from 'pg'
import { currentTenant, type TenantId } from '../context/index.js'
import { type BindingOption, beginStatement, bindStatement } from '../db/binding.js'
import { explainUnreachable } from '../db/connect.js'
import { runPipelined } from '../db/pipelined-query.js'
import { acquire, type DatabaseTimeouts, resolveTimeouts, withTimeouts } from '../db/unavailable.js'
import { DEFAULTS } from '../sql/defaults.js'
import { asUnavailable, guardPoolErrors } from '../sql/unavailable.js'
import { parseTenantId, type TenantIdType } from '../tenants/id-types.js'

/**
 * Options of {@link withTenantClient}.
 *
 * @example
 * ```ts
 * const opts: WithTenantClientOptions = { tenantId: 7, tenantIdType: 'bigint' }
 * ```
 */
export interface WithTenantClientOptions {
  /** The tenant to bind; the current tenant (`currentTenant()`) by default. */
  readonly tenantId?: TenantId | undefined
  /** The SQL type of tenant ids; `bigint` by default. */
  readonly tenantIdType?: TenantIdType | undefined
  /** `set_config` (default), `set_local` (Citus), or `auto` (SET LOCAL when Citus is installed). */
  readonly binding?: BindingOption | undefined
  /**
   * `acquireMs` bounds the wait for a pooled connection (5000 by default, 0 =
   * forever); `statementMs`, `lockMs`, `idleInTransactionMs` are set for the
   * transaction with the binding (set_config binding only).
   */
  readonly timeouts?: DatabaseTimeouts | undefined
}

const citusByPool = new WeakMap<pg.Pool, Promise<boolean>>()

/**
 * Runs `fn` with a client of `pool` inside a transaction bound to a tenant:
 * checkout, `BEGIN` + `select set_config('rowtenancy.tenant_id', $1, true)` (sent
 * together, one round trip), `fn(client)`, `COMMIT` (or `ROLLBACK` when `fn`
 * throws), release. Row Level Security then limits every statement `fn` runs
 * to that tenant. The binding ends with the transaction: the released client
 * carries nothing into its next checkout. Fails closed with `MissingTenantError`
 * (no tenant given or in context) or `InvalidTenantIdError` before checkout.
 *
 * @example
 * ```ts
 * import { withTenantClient } from 'rowtenancy/pg'
 *
 * const rows = await withTenantClient(pool, async (client) => {
 *   const { rows } = await client.query('select * from accounts')
 *   return rows // tenant 7's accounts only
 * }, { tenantId: 7 })
 * ```
 */
export async function withTenantClient<T>(
  pool: pg.Pool,
  fn: (client: pg.PoolClient) => Promise<T>,
  options: WithTenantClientOptions = {},
): Promise<T> {
  const tenantId = options.tenantId ?? currentTenant()
  const type = options.tenantIdType ?? DEFAULTS.tenantIdType
  const binding = options.binding ?? 'set_config'
  // Validate (and build) the binding before a connection is taken.
  parseTenantId(type, tenantId)
  const timeouts = resolveTimeouts(options.timeouts, 'withTenantClient timeouts')
  guardPoolErrors(pool)
  const mode =
    binding === 'auto'
      ? (await explainUnreachable(pool, () => citusInstalled(pool)))
        ? 'set_local'
        : 'set_config'
      : binding
  const bind = withTimeouts(bindStatement(mode, type, tenantId), timeouts)
  const client = await acquire(pool, timeouts.acquireMs)
  let discard = false
  try {
    await runPipelined(client, [beginStatement()], bind)
    let result: T
    try {
      result = await fn(client)
    } catch (err) {
      await client.query('rollback').catch(() => {
        discard = true
      })
      throw err
    }
    const { command } = await client.query('commit')
    if (command === 'ROLLBACK') {
      throw new Error(
        'The transaction was rolled back because a statement in it failed (an error was caught inside fn). ' +
          'Let the error propagate, or use a SAVEPOINT around the statement that may fail.',
      )
    }
    return result
  } catch (err) {
    if (client.getTransactionStatus() !== 'I') {
      await client.query('rollback').catch(() => {
        discard = true
      })
    }
    // A lost connection or a timeout: DatabaseUnavailableError (the client is destroyed by pg).
    throw asUnavailable(err)
  } finally {
    client.release(discard)
  }
}

function citusInstalled(pool: pg.Pool): Promise<boolean> {
  let known = citusByPool.get(pool)
  if (!known) {
    known = pool
      .query(`select exists (select 1 from pg_extension where extname = 'citus') as citus`)
      .then((r) => Boolean(r.rows[0]?.citus))
    known.catch(() => citusByPool.delete(pool))
    citusByPool.set(pool, known)
  }
  return known
}
