import type pg from 'pg'
import { acquire, DEFAULT_ACQUIRE_MS } from '../sql/acquire.js'
import { asUnavailable } from '../sql/unavailable.js'
import { type BindingMode, beginStatement } from './binding.js'
import { bindSequence } from './citus-binding.js'
import type { Statement } from './pipelined-query.js'
import { refuseQuery, releasedClientError } from './released-client.js'
import { preparedBindName, SessionGuard } from './session-guard.js'

/**
 * Runs `fn` with a client of `pool` inside ONE transaction bound by `bind`, under
 * the checkout protocol ({@link SessionGuard}): checkout, `BEGIN` + the binding in
 * one round trip (after the reset when the session is foreign), `fn(client)`, then
 * COMMIT (ROLLBACK when `fn` throws) with the session reset riding in the same
 * round trip, since `fn` may run any SQL on the raw client; release. The building
 * block of `withTenantClient` and of the tenant pool any pg-based ORM uses.
 *
 * @internal
 * @example
 * ```ts
 * const bind = bindStatement('set_config', 'bigint', 7)
 * await withBoundClient(pool, bind, 'set_config', (client) => client.query('select * from accounts'))
 * ```
 */
export async function withBoundClient<T>(
  pool: pg.Pool,
  bind: Statement,
  mode: BindingMode,
  fn: (client: pg.PoolClient) => Promise<T>,
  options: BoundClientOptions = {},
): Promise<T> {
  const guard = SessionGuard.for(pool)
  // A full pool fails after acquireMs; connect errors become DatabaseUnavailableError.
  const session = guard.checkout(await acquire(pool, options.acquireMs ?? DEFAULT_ACQUIRE_MS))
  session.markDirty()
  try {
    // SET LOCAL (Citus): the propagation setting goes between BEGIN and the bind
    const prelude = bindSequence(mode, bind).slice(0, -1)
    const prepareAs = options.unnamed ? undefined : preparedBindName(mode)
    const opening = session.opening([beginStatement(), ...prelude], bind, prepareAs)
    await session.run(opening.slice(0, -1), opening[opening.length - 1]!)
    let result: T
    const lent = lendClient(session.client)
    try {
      try {
        result = await fn(lent.client)
      } finally {
        lent.end()
      }
    } catch (err) {
      await session.run([], { text: 'rollback' }, session.closing()).catch(() => session.discard())
      throw err
    }
    const { command } = await session.run([], { text: 'commit' }, session.closing())
    if (command === 'ROLLBACK') {
      throw new Error(
        'The transaction was rolled back because a statement in it failed (an error was caught inside fn). ' +
          'Let the error propagate, or use a SAVEPOINT around the statement that may fail.',
      )
    }
    return result
  } catch (err) {
    // A lost connection or a timeout: DatabaseUnavailableError; other errors unchanged.
    throw asUnavailable(err)
  } finally {
    await session.release()
  }
}

/**
 * The client as `fn` sees it: its own until `fn` settles, then refused (a reference kept
 * past `fn` would otherwise run in whatever checkout the pool gives that client next, another
 * tenant's). `release` is refused throughout: the client goes back once the transaction ends.
 */
function lendClient(client: pg.PoolClient): { client: pg.PoolClient; end(): void } {
  let ended = false
  const query = (...args: unknown[]): unknown => {
    if (!ended) return (client.query as (...a: unknown[]) => unknown)(...args)
    return refuseQuery(args, releasedClientError('when the callback of withTenantClient ended'))
  }
  const release = (): never => {
    throw new Error(
      'withTenantClient gives the client back itself when the callback ends (after COMMIT or ROLLBACK); do not release it.',
    )
  }
  const lent = new Proxy(client, {
    get(target, prop, receiver) {
      if (prop === 'query') return query
      if (prop === 'release') return release
      // Ended: nothing of the pooled client (pg's own query called on this view, its
      // connection) is handed out any more.
      if (ended && typeof prop === 'string') {
        throw releasedClientError('when the callback of withTenantClient ended')
      }
      // Methods run on the view, not bound to the pooled client: one that returns its
      // receiver (`on`, `once`, `setMaxListeners` ...) hands back the view, which ends
      // with the callback, never the pooled client, which would outlive it.
      return Reflect.get(target, prop, receiver)
    },
  })
  return {
    client: lent,
    end: () => {
      ended = true
    },
  }
}

/**
 * Options of {@link withBoundClient}.
 *
 * @internal
 */
export interface BoundClientOptions {
  /** How long the checkout may wait (default `DEFAULT_ACQUIRE_MS`; 0 = forever). */
  readonly acquireMs?: number | undefined
  /** Send the bind unnamed (a bind that carries timeouts: the prepared name is shared per pool). */
  readonly unnamed?: boolean | undefined
}
