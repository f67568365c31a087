import { ConfigError } from '../errors/index.js'
import type { Statement } from './pipelined-query.js'

/**
 * The name the `set_config` bind statement is prepared under with `prepareBind: true`.
 *
 * @example
 * ```ts
 * await pool.query('select 1 from pg_prepared_statements where name = $1', [PREPARED_BIND_NAME])
 * ```
 */
export const PREPARED_BIND_NAME = 'rowtenancy_bind'

/** SQLSTATE 26000: invalid_sql_statement_name ("prepared statement ... does not exist"). */
const MISSING_PREPARED = '26000'
/** SQLSTATE 42P05: duplicate_prepared_statement ("prepared statement ... already exists"). */
const DUPLICATE_PREPARED = '42P05'

/**
 * Which pg clients (connections) have the bind statement prepared, for the
 * `prepareBind` option: the first bind on a client sends Parse under
 * {@link PREPARED_BIND_NAME}, every later one only Bind + Execute of that name.
 * One instance per driver; clients are held weakly.
 *
 * @internal
 * @example
 * ```ts
 * const binds = new PreparedBinds()
 * const first = binds.use(client, bind) // { ...bind, prepared: 'rowtenancy_bind', parse: true }
 * const later = binds.use(client, bind) // { ...bind, prepared: 'rowtenancy_bind' }
 * ```
 */
export class PreparedBinds {
  readonly #clients = new WeakSet<object>()

  /**
   * The statement to send for `bind` on `client`, which counts as prepared from
   * here on: a named statement outlives an error later in the same pipeline (it is
   * not transactional), so it is marked before the pipeline goes out.
   */
  use(client: object, bind: Statement): Statement {
    if (this.#clients.has(client)) return bind
    this.#clients.add(client)
    return { ...bind, parse: true }
  }

  /**
   * Maps an error of a pipeline that carried the prepared bind: when the server
   * lost (26000) or already had (42P05) the statement, the client is forgotten
   * (its next use prepares again) and a ConfigError explains the cause; any other
   * error is returned as is.
   */
  explain(client: object, err: unknown): unknown {
    const code = (err as { code?: unknown } | null)?.code
    const message = String((err as { message?: unknown } | null)?.message ?? '')
    if (
      (code !== MISSING_PREPARED && code !== DUPLICATE_PREPARED) ||
      !message.includes(PREPARED_BIND_NAME)
    ) {
      return err
    }
    this.#clients.delete(client)
    return new ConfigError(
      `The tenant-binding statement "${PREPARED_BIND_NAME}" prepared on this connection ` +
        (code === MISSING_PREPARED
          ? 'is gone'
          : 'already existed in a session this client did not prepare') +
        ' (a connection pooler reset or swapped the server session, e.g. DISCARD ALL or transaction pooling). ' +
        'Turn prepareBind off behind such a pooler; keep it on only with a direct connection, session ' +
        'pooling, or PgBouncer >= 1.21 with max_prepared_statements set.',
      { cause: err },
    )
  }

  /**
   * The prepared form of a `set_config` bind statement (Bind + Execute of
   * {@link PREPARED_BIND_NAME}).
   *
   * @example
   * ```ts
   * PreparedBinds.named(bindStatement('set_config', 'bigint', 7))
   * ```
   */
  static named(bind: Statement): Statement {
    return Object.freeze({ ...bind, prepared: PREPARED_BIND_NAME })
  }
}
