import {
  CompiledQuery,
  type DatabaseConnection,
  type Dialect,
  type Driver,
  type Kysely,
  type QueryCompiler,
  type QueryResult,
  type TransactionSettings,
} from 'kysely'
import { asUnavailable } from '../sql/unavailable.js'
import type { Queryable } from '../tenants/index.js'

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
 * Work to run after a statement on the same connection (an audit insert). Run
 * at once outside a transaction; inside one, queued and run right after the
 * commit or rollback, so the record survives a rollback. Using the statement's
 * own connection means a full pool can never deadlock on it.
 *
 * @internal
 */
export type StatementFollowUp = (db: Queryable) => Promise<void>

/**
 * Hooks around every statement a Kysely instance sends. `before` runs first and
 * may throw to refuse the statement (nothing reaches the database); its return
 * value is handed to `after`, which runs once the statement has finished (also
 * when it failed) and may return a follow-up; a follow-up that throws withholds
 * the statement's result.
 *
 * @internal
 */
export interface StatementHooks<T> {
  before(query: CompiledQuery): T
  after(state: T, query: CompiledQuery, outcome: StatementOutcome): StatementFollowUp | undefined
  /**
   * Set when `after` does nothing for a statement whose `before` returned
   * `undefined`: such a statement is then handed straight to the inner
   * connection (no extra async layer per query on the hot path).
   */
  readonly skipAfterWhenUndefined?: boolean
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
export function hookDialect<T>(
  inner: Dialect,
  hooks: StatementHooks<T>,
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

class HookedDriver<T> implements Driver {
  readonly #inner: Driver
  readonly #hooks: StatementHooks<T>
  readonly #destroyInner: boolean

  constructor(inner: Driver, hooks: StatementHooks<T>, destroyInner: boolean) {
    this.#inner = inner
    this.#hooks = hooks
    this.#destroyInner = destroyInner
  }

  init(): Promise<void> {
    return this.#inner.init()
  }

  acquireConnection(): Promise<DatabaseConnection> {
    // `.then` with one shared function: no async frame and no closure per query.
    return this.#inner.acquireConnection().then(this.#wrap, rethrowUnavailable)
  }

  readonly #wrap = (connection: DatabaseConnection): DatabaseConnection =>
    new HookedConnection(connection, this.#hooks)

  #unwrap(connection: DatabaseConnection): DatabaseConnection {
    return connection instanceof HookedConnection ? connection.inner : connection
  }

  #hooked(connection: DatabaseConnection): HookedConnection<unknown> | undefined {
    return connection instanceof HookedConnection ? connection : undefined
  }

  async beginTransaction(
    connection: DatabaseConnection,
    settings: TransactionSettings,
  ): Promise<void> {
    await this.#inner.beginTransaction(this.#unwrap(connection), settings)
    this.#hooked(connection)?.beginTransaction()
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    try {
      await this.#inner.commitTransaction(this.#unwrap(connection))
    } catch (err) {
      rethrowUnavailable(err)
    } finally {
      await this.#hooked(connection)?.endTransaction()
    }
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    try {
      await this.#inner.rollbackTransaction(this.#unwrap(connection))
    } catch (err) {
      rethrowUnavailable(err)
    } finally {
      await this.#hooked(connection)?.endTransaction()
    }
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

class HookedConnection<T> implements DatabaseConnection {
  readonly inner: DatabaseConnection
  readonly #hooks: StatementHooks<T>
  #db: Queryable | undefined
  #pending: StatementFollowUp[] | undefined

  constructor(inner: DatabaseConnection, hooks: StatementHooks<T>) {
    this.inner = inner
    this.#hooks = hooks
  }

  /** This connection as a `Queryable`, for follow-ups (made on first use). */
  get #queryable(): Queryable {
    const inner = this.inner
    this.#db ??= {
      async query(text, values = []) {
        const result = await inner.executeQuery(CompiledQuery.raw(text, values))
        return { rows: result.rows as unknown[], rowCount: rowCountOf(result) }
      },
    }
    return this.#db
  }

  beginTransaction(): void {
    this.#pending = []
  }

  async endTransaction(): Promise<void> {
    const pending = this.#pending ?? []
    this.#pending = undefined
    for (const followUp of pending) await followUp(this.#queryable)
  }

  async #follow(followUp: StatementFollowUp | undefined): Promise<void> {
    if (followUp === undefined) return
    if (this.#pending) this.#pending.push(followUp)
    else await followUp(this.#queryable)
  }

  executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    let state: T
    try {
      state = this.#hooks.before(query)
    } catch (error) {
      return Promise.reject(error)
    }
    if (state === undefined && this.#hooks.skipAfterWhenUndefined) {
      return this.inner.executeQuery<R>(query).then(undefined, rethrowUnavailable)
    }
    return this.#executeHooked(state, query).then(undefined, rethrowUnavailable)
  }

  async #executeHooked<R>(state: T, query: CompiledQuery): Promise<QueryResult<R>> {
    let result: QueryResult<R>
    try {
      result = await this.inner.executeQuery<R>(query)
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
    const state = this.#hooks.before(query)
    let rows = 0
    let error: unknown
    let failed = false
    try {
      for await (const chunk of this.inner.streamQuery<R>(query, chunkSize)) {
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
