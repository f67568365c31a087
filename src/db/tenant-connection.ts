import {
  AbortedTransactionError,
  type CompiledQuery,
  type DatabaseConnection,
  type PostgresCursor,
  type PostgresCursorConstructor,
  type QueryResult,
  type TransactionSettings,
} from 'kysely'
import type pg from 'pg'
import { mentionsUnscopableCall } from '../sql/unscopable-functions.js'
import { type BindingMode, beginStatement, implicitScope } from './binding.js'
import { bindSequence } from './citus-binding.js'
import { type HybridCheckout, movedError } from './hybrid-binding.js'
import { isSessionNeutral } from './neutral-statement.js'
import { runPipelined, type Statement } from './pipelined-query.js'
import type { GuardedSession } from './session-guard.js'
import { isBuilderQuery } from './statement-trust.js'

/**
 * One checked-out connection of the binding driver. A bound connection runs a
 * lone query as `bind + query` in one round trip (one implicit transaction), and
 * a user transaction as `BEGIN + bind` sent together with its first statement;
 * what goes around them (the reset of a foreign or raw-SQL session, the prepared
 * bind) is the checkout protocol of {@link GuardedSession}. An unbound connection
 * (the admin pool, for `withoutTenant`) runs SQL as is.
 *
 * @internal
 * @example
 * ```ts
 * const conn = new TenantConnection(client, bind, 'set_config', null, SessionGuard.for(pool).checkout(client))
 * await conn.executeQuery(CompiledQuery.raw('select * from accounts'))
 * ```
 */
export class TenantConnection implements DatabaseConnection {
  readonly #client: pg.PoolClient
  #bind: Statement | undefined
  readonly #mode: BindingMode
  readonly #cursor: PostgresCursorConstructor | null
  /** The checkout protocol (bound connections only). */
  readonly #session: GuardedSession | undefined
  /** The name the bind goes out under as a prepared statement (undefined: unnamed). */
  readonly #prepareAs: string | undefined
  /** Statements (BEGIN, bind) to send with the next statement of a user transaction. */
  #pending: readonly Statement[] | undefined
  #inTransaction = false
  #discard = false
  /** Online migration: the placement this connection was bound for (see hybrid-binding.ts). */
  #hybrid: HybridCheckout | undefined
  /** The last statement went out as a lone statement with the binding (one implicit transaction). */
  #lone = false
  /** Given back to the pool: a handle kept after its checkout runs nothing more. */
  #released = false

  constructor(
    client: pg.PoolClient,
    bind: Statement | undefined,
    mode: BindingMode,
    cursor: PostgresCursorConstructor | null,
    session?: GuardedSession | undefined,
    prepareAs?: string | undefined,
    hybrid?: HybridCheckout | undefined,
  ) {
    this.#hybrid = hybrid
    this.#client = client
    this.#bind = bind
    this.#mode = mode
    this.#cursor = cursor
    this.#session = session
    this.#prepareAs = prepareAs
  }

  /** True when this connection carries a tenant binding (false: admin, unbound). */
  get bound(): boolean {
    return this.#bind !== undefined
  }

  /**
   * Online migration: where this connection's tenant is served from (`schema`:
   * its legacy schema, `search_path` set by `rowtenancy_enter`); undefined
   * outside hybrid serving.
   */
  get placement(): 'schema' | 'shared' | undefined {
    return this.#hybrid?.placement
  }

  executeQuery<R>(compiled: CompiledQuery): Promise<QueryResult<R>> {
    if (this.#released) return Promise.reject(releasedError())
    const hybrid = this.#hybrid
    if (!hybrid) return this.#execute(compiled)
    return this.#execute<R>(compiled).catch((err: unknown) => {
      hybrid.failed(err)
      throw err
    })
  }

  /**
   * After `rowtenancy_enter` refused a stale placement (`RTP01`) on a lone
   * statement (its implicit transaction ended with the error; nothing of it ran):
   * the placement is read afresh and the next statement goes out with it. False
   * for anything else (inside a user transaction, the error stands).
   *
   * @internal
   */
  async reopen(err: unknown): Promise<boolean> {
    const hybrid = this.#hybrid
    if (!hybrid || !this.#lone || this.#inTransaction || !movedError(err)) return false
    const next = await hybrid.again()
    this.#hybrid = next.hybrid
    this.#bind = next.bind
    return true
  }

  async #execute<R>(compiled: CompiledQuery): Promise<QueryResult<R>> {
    this.#lone = false
    const main: Statement = { text: compiled.sql, values: compiled.parameters }
    const session = this.#session
    if (session) noteStatement(session, compiled)
    const pending = this.#pending
    let result: pg.QueryResult
    if (pending) {
      this.#pending = undefined
      result = await this.#run(pending, main)
    } else if (this.#inTransaction || !this.#bind || !session) {
      result = await this.#client.query(compiled.sql, [...compiled.parameters])
    } else {
      const { before, after } = implicitScope(this.#mode, this.#bind)
      this.#lone = true
      const opening = session.opening(before.slice(0, -1), this.#bind, this.#prepareAs)
      // The reset rides before the closing COMMIT of a SET LOCAL scope, else at the end.
      const closing = session.closing()
      try {
        result = await session.run(opening, main, closing.length ? [...closing, ...after] : after)
      } catch (err) {
        // pg calls back on the ErrorResponse, before the ReadyForQuery that reports the
        // aborted transaction: the status may still read 'I'. When this pipeline opened a
        // transaction (SET LOCAL binding), roll back regardless (queued until that message).
        if (before[0]?.text === 'begin') {
          await this.#client.query('rollback').catch(() => {
            this.#discard = true
          })
        } else await this.#rollbackIfOpen()
        throw err
      }
    }
    return toQueryResult<R>(result)
  }

  async *streamQuery<R>(
    compiled: CompiledQuery,
    chunkSize = 100,
  ): AsyncIterableIterator<QueryResult<R>> {
    if (this.#released) throw releasedError()
    if (!this.#cursor) {
      throw new Error(
        "'cursor' is not present in your dialect config. It's required to make streaming work in postgres: " +
          "pass cursor (import Cursor from 'pg-cursor') in the TenantBindingDialect config.",
      )
    }
    if (!Number.isInteger(chunkSize) || chunkSize <= 0) {
      throw new Error(`chunkSize must be a positive integer, got ${chunkSize}; e.g. .stream(100).`)
    }
    if (this.#session) noteStatement(this.#session, compiled)
    const own = !this.#inTransaction && this.#bind !== undefined
    if (own) this.begin({})
    await this.#flush()
    const cursor = this.#client.query(
      new this.#cursor<R>(compiled.sql, compiled.parameters.slice()) as unknown as pg.Submittable,
    ) as unknown as PostgresCursor<R>
    let ok = false
    try {
      while (true) {
        const rows = await cursor.read(chunkSize)
        if (rows.length === 0) break
        yield { rows }
      }
      ok = true
    } finally {
      await cursor.close()
      if (own) await (ok ? this.commit() : this.rollback())
    }
  }

  /** Marks the start of a user transaction; BEGIN and the binding go out with its first statement. @internal */
  begin(settings: TransactionSettings): void {
    if (this.#released) throw releasedError()
    this.#inTransaction = true
    const begin = beginStatement(settings)
    this.#pending = this.#bind ? [begin, ...bindSequence(this.#mode, this.#bind)] : [begin]
  }

  /** @internal */
  async commit(): Promise<void> {
    if (this.#released) throw releasedError()
    this.#inTransaction = false
    if (this.#pending) {
      this.#pending = undefined // nothing was sent: nothing to commit
      return
    }
    const { command } = await this.#end('commit')
    // PostgreSQL completes COMMIT with a ROLLBACK tag after an earlier error.
    if (command === 'ROLLBACK') throw new AbortedTransactionError()
  }

  /** @internal */
  async rollback(): Promise<void> {
    if (this.#released) throw releasedError()
    this.#inTransaction = false
    if (this.#pending) {
      this.#pending = undefined
      return
    }
    try {
      await this.#end('rollback')
    } catch (err) {
      this.#discard = true
      throw err
    }
  }

  /**
   * Returns the client to its pool. A connection still inside a transaction
   * (which would carry its binding to the next checkout) is rolled back first,
   * a session raw SQL may have changed is reset (see {@link GuardedSession}),
   * and the client is destroyed when either fails.
   *
   * @internal
   */
  async release(): Promise<void> {
    if (this.#released) return
    this.#released = true
    this.#pending = undefined
    this.#inTransaction = false
    if (this.#session) {
      if (this.#discard) this.#session.discard()
      await this.#session.release()
      return
    }
    const status = this.#client.getTransactionStatus()
    if (status !== 'I' && status !== null) await this.#rollbackIfOpen()
    this.#client.release(this.#discard)
  }

  /** COMMIT or ROLLBACK, with the session reset riding after it when raw SQL ran. */
  #end(command: 'commit' | 'rollback'): Promise<pg.QueryResult> {
    const closing = this.#session?.closing() ?? []
    if (!this.#session || closing.length === 0) return this.#client.query(command)
    return this.#session.run([], { text: command }, closing)
  }

  async #flush(): Promise<void> {
    const pending = this.#pending
    if (!pending) return
    this.#pending = undefined
    await this.#run(pending.slice(0, -1), pending[pending.length - 1]!)
  }

  /** The first statement of a user transaction, with BEGIN and the binding (see GuardedSession.opening). */
  #run(pending: readonly Statement[], main: Statement): Promise<pg.QueryResult> {
    const session = this.#session
    if (!session || !this.#bind) return runPipelined(this.#client, pending, main)
    const opening = session.opening(pending.slice(0, -1), this.#bind, this.#prepareAs)
    return session.run(opening, main)
  }

  async #rollbackIfOpen(): Promise<void> {
    const status = this.#client.getTransactionStatus()
    if (status === 'I' || status === null) return
    try {
      await this.#client.query('rollback')
    } catch {
      this.#discard = true
    }
  }
}
/**
 * A statement on a connection after its checkout ended: the pool may have handed its client
 * to another tenant's work since (a `db.connection()` handle kept past its callback).
 */
function releasedError(): Error {
  return new Error(
    'This connection was released to the pool: a handle from db.connection() or db.transaction() ' +
      'runs queries only inside its callback. Run the query inside the callback, or on db itself.',
  )
}

function toQueryResult<R>(result: pg.QueryResult): QueryResult<R> {
  const { command, rowCount, rows } = result
  if (command === 'ROLLBACK' || command === 'COMMIT') return { rows: [{ command } as R] }
  return {
    numAffectedRows:
      command === 'INSERT' || command === 'UPDATE' || command === 'DELETE' || command === 'MERGE'
        ? BigInt(rowCount ?? 0)
        : undefined,
    rows: (rows ?? []) as R[],
  }
}

/**
 * Raw SQL gets the session reset after it, and so does a builder query that may call a
 * function that sets the binding or runs SQL it is given (the plugin refuses those; this
 * driver may run without it); a builder query that writes or calls another function gets
 * `discard sequences` (see `GuardedSession.noteWrite`).
 */
function noteStatement(session: GuardedSession, compiled: CompiledQuery): void {
  if (!isBuilderQuery(compiled) || mentionsUnscopableCall(compiled.sql)) session.markDirty()
  // A builder query may call any function (one that inserts, or nextval itself): unless
  // its text calls none but the aggregates, its sequence state is discarded too.
  else if (!isSessionNeutral(compiled.sql)) session.markWrote()
  else session.noteWrite(compiled.sql)
}
