import type pg from 'pg'
import { type BindingMode, beginStatement } from './binding.js'
import { bindSequence } from './citus-binding.js'
import { explainUnreachable } from './connect.js'
import type { Statement } from './pipelined-query.js'
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
 * await inBoundTransaction(pool, bind, 'set_config', (client) => client.query('select * from accounts'))
 * ```
 */
export async function inBoundTransaction<T>(
  pool: pg.Pool,
  bind: Statement,
  mode: BindingMode,
  fn: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  const guard = SessionGuard.for(pool)
  const session = guard.checkout(await explainUnreachable(pool, () => pool.connect()))
  session.markDirty()
  try {
    // SET LOCAL (Citus): the propagation setting goes between BEGIN and the bind
    const prelude = bindSequence(mode, bind).slice(0, -1)
    const opening = session.opening([beginStatement(), ...prelude], bind, preparedBindName(mode))
    await session.run(opening.slice(0, -1), opening[opening.length - 1]!)
    let result: T
    try {
      result = await fn(session.client)
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
  } finally {
    await session.release()
  }
}
