import type {
  CompiledQuery,
  DatabaseConnection,
  Dialect,
  Driver,
  Kysely,
  QueryCompiler,
  QueryResult,
  TransactionSettings,
} from 'kysely'
import { asUnavailable } from '../sql/unavailable.js'

/**
 * What happened to one statement: how many rows it returned or touched, or the
 * error it failed with.
 *
 * @internal
 */
export interface StatementOutcome {
  readonly rowCount: number | null
  readonly error?: unknown
}

/**
 * Work to run after a statement (an audit insert), awaited before the
 * statement's result is handed back; when it throws, the result is withheld.
 * It must not use the statement's connection: user SQL on that connection (a
 * raw `begin` ... `rollback`) could undo it.
 *
 * @internal
 */
export type StatementFollowUp = () => Promise<void>

/**
 * Hooks around every statement a Kysely instance sends. `acquired` runs when a
 * connection is checked out (a lone statement, a transaction, `db.connection()`)
 * and its value is handed to every `before` of that connection, so a handle can
 * be refused once the context it was opened in is gone. `before` runs first and
 * may throw to refuse the statement (nothing reaches the database); its return
 * value is handed to `after`, which runs once the statement has finished (also
 * when it failed) and may return a follow-up; a follow-up that throws withholds
 * the statement's result.
 *
 * @internal
 */
export interface StatementHooks<T, A = undefined> {
  acquired?(): A
  before(query: CompiledQuery, acquired: A): T
  after(state: T, query: CompiledQuery, outcome: StatementOutcome): StatementFollowUp | undefined
  /**
   * Set when `after` does nothing for a statement whose `before` returned
   * `undefined`: such a statement is then handed straight to the inner
   * connection (no extra async layer per query on the hot path).
   */
  readonly skipAfterWhenUndefined?: boolean
  /**
   * The query to send in place of `query` on `connection` (run after `before`):
   * hybrid serving compiles a query for a tenant still on its legacy schema
   * without the tenant filters. Absent: the query goes as compiled.
   */
  rewrite?(query: CompiledQuery, connection: DatabaseConnection): CompiledQuery
}

/**
 * Wraps a dialect so that every statement its connections execute goes through
 * `hooks` (the statements a driver sends for itself, such as `begin`/`commit`,
 * do not). `destroy()` of the wrapped driver does not destroy the inner one
 * unless `destroyInner` is set: pools shared by several instances are closed by
 * their owner.
 *
 * @example
 * ```ts
 * const dialect = hookDialect(new PostgresDialect({ pool }), {
 *   before: (q) => console.log(q.sql),
 *   after: () => {},
 * })
 * ```
 * @internal
 */
export function hookDialect<T, A>(
  inner: Dialect,
  hooks: StatementHooks<T, A>,
  options: { destroyInner?: boolean } = {},
): Dialect {
  return Object.freeze({
    createAdapter: () => inner.createAdapter(),
    createQueryCompiler: () => inner.createQueryCompiler(),
    createIntrospector: (db: Kysely<any>) => inner.createIntrospector(db),
    createDriver: () =>
      new HookedDriver(inner.createDriver(), hooks, options.destroyInner ?? false),
  })
}

class HookedDriver<T, A> implements Driver {
  readonly #inner: Driver
  readonly #hooks: StatementHooks<T, A>
  readonly #destroyInner: boolean

  constructor(inner: Driver, hooks: StatementHooks<T, A>, destroyInner: boolean) {
    this.#inner = inner
    this.#hooks = hooks
    this.#destroyInner = destroyInner
  }

  init(): Promise<void> {
    return this.#inner.init()
  }

  acquireConnection(): Promise<DatabaseConnection> {
    const hooks = this.#hooks
    if (hooks.acquired === undefined)
      return this.#inner.acquireConnection().then(this.#wrap, rethrowUnavailable)
    // Read in the caller's context, before the checkout.
    const acquired = hooks.acquired()
    return this.#inner
      .acquireConnection()
      .then((connection) => new HookedConnection(connection, hooks, acquired), rethrowUnavailable)
  }

  readonly #wrap = (connection: DatabaseConnection): DatabaseConnection =>
    new HookedConnection(connection, this.#hooks, undefined as A)

  #unwrap(connection: DatabaseConnection): DatabaseConnection {
    return connection instanceof HookedConnection ? connection.inner : connection
  }

  async beginTransaction(
    connection: DatabaseConnection,
    settings: TransactionSettings,
  ): Promise<void> {
    await this.#inner.beginTransaction(this.#unwrap(connection), settings)
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    await this.#inner.commitTransaction(this.#unwrap(connection)).catch(rethrowUnavailable)
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    await this.#inner.rollbackTransaction(this.#unwrap(connection)).catch(rethrowUnavailable)
  }

  async savepoint(
    connection: DatabaseConnection,
    name: string,
    compile: QueryCompiler['compileQuery'],
  ): Promise<void> {
    await this.#inner.savepoint?.(this.#unwrap(connection), name, compile)
  }

  async rollbackToSavepoint(
    connection: DatabaseConnection,
    name: string,
    compile: QueryCompiler['compileQuery'],
  ): Promise<void> {
    await this.#inner.rollbackToSavepoint?.(this.#unwrap(connection), name, compile)
  }

  async releaseSavepoint(
    connection: DatabaseConnection,
    name: string,
    compile: QueryCompiler['compileQuery'],
  ): Promise<void> {
    await this.#inner.releaseSavepoint?.(this.#unwrap(connection), name, compile)
  }

  releaseConnection(connection: DatabaseConnection): Promise<void> {
    return this.#inner.releaseConnection(this.#unwrap(connection))
  }

  async destroy(): Promise<void> {
    if (this.#destroyInner) await this.#inner.destroy()
  }
}

class HookedConnection<T, A> implements DatabaseConnection {
  readonly inner: DatabaseConnection
  readonly #hooks: StatementHooks<T, A>
  readonly #acquired: A

  constructor(inner: DatabaseConnection, hooks: StatementHooks<T, A>, acquired: A) {
    this.inner = inner
    this.#hooks = hooks
    this.#acquired = acquired
  }

  async #follow(followUp: StatementFollowUp | undefined): Promise<void> {
    if (followUp !== undefined) await followUp()
  }

  executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    let state: T
    try {
      state = this.#hooks.before(query, this.#acquired)
    } catch (error) {
      return Promise.reject(error)
    }
    const sent = this.#hooks.rewrite ? this.#hooks.rewrite(query, this.inner) : query
    if (state === undefined && this.#hooks.skipAfterWhenUndefined) {
      return this.inner
        .executeQuery<R>(sent)
        .catch((err: unknown) => this.#again<R>(err, query))
        .then(undefined, rethrowUnavailable)
    }
    return this.#executeHooked(state, query, sent).then(undefined, rethrowUnavailable)
  }

  /**
   * Once: a connection that can take the statement again after a refusal that
   * ran none of it (hybrid serving: a stale cached placement) does, the query
   * rewritten for what the connection knows now.
   */
  async #again<R>(err: unknown, query: CompiledQuery): Promise<QueryResult<R>> {
    const inner = this.inner as { reopen?: (err: unknown) => Promise<boolean> }
    if (typeof inner.reopen !== 'function' || !(await inner.reopen(err))) throw err
    const sent = this.#hooks.rewrite ? this.#hooks.rewrite(query, this.inner) : query
    return this.inner.executeQuery<R>(sent)
  }

  async #executeHooked<R>(
    state: T,
    query: CompiledQuery,
    sent: CompiledQuery,
  ): Promise<QueryResult<R>> {
    let result: QueryResult<R>
    try {
      result = await this.inner
        .executeQuery<R>(sent)
        .catch((err: unknown) => this.#again<R>(err, query))
    } catch (error) {
      const followUp = this.#hooks.after(state, query, { rowCount: null, error })
      if (followUp !== undefined) await this.#follow(followUp)
      throw error
    }
    const followUp = this.#hooks.after(state, query, { rowCount: rowCountOf(result) })
    if (followUp !== undefined) await this.#follow(followUp)
    return result
  }

  async *streamQuery<R>(
    query: CompiledQuery,
    chunkSize?: number,
  ): AsyncIterableIterator<QueryResult<R>> {
    const state = this.#hooks.before(query, this.#acquired)
    const sent = this.#hooks.rewrite ? this.#hooks.rewrite(query, this.inner) : query
    let rows = 0
    let error: unknown
    let failed = false
    try {
      for await (const chunk of this.inner.streamQuery<R>(sent, chunkSize)) {
        rows += chunk.rows.length
        yield chunk
      }
    } catch (err) {
      failed = true
      error = err
      throw err
    } finally {
      const outcome = failed ? { rowCount: null, error } : { rowCount: rows }
      await this.#follow(this.#hooks.after(state, query, outcome))
    }
  }
}

/** A lost connection, a timeout, a full pool: one stable `DatabaseUnavailableError`. */
function rethrowUnavailable(err: unknown): never {
  throw asUnavailable(err)
}

function rowCountOf(result: QueryResult<unknown>): number {
  return result.numAffectedRows !== undefined ? Number(result.numAffectedRows) : result.rows.length
}
