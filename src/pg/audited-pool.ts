import type pg from 'pg'
import type { AuditContext, AuditWriter } from '../audit/index.js'
import { InvalidInputError } from '../errors/index.js'
import {
  type ClientHooks,
  PoolFacade,
  parseQueryCall,
  type QueryCall,
  settle,
} from './pool-facade.js'
import { isSingleStatement, statementKind } from './statement-kind.js'

/**
 * Options of {@link AuditedPool}.
 */
export interface AuditedPoolOptions {
  /** The pool that reads every tenant (the owner, or a BYPASSRLS role). */
  readonly pool: pg.Pool
  /** Writes the audit records. */
  readonly writer: AuditWriter
  /** The audit context of a statement, asked when it runs. */
  readonly context: () => AuditContext
  /** How long a checkout waits for a free connection (`pool-timeout` after); 5000 ms by default, 0: no limit. */
  readonly acquireMs?: number | undefined
}

const NO_SUBMITTABLES =
  'An audited pool runs no cursor or stream objects (their rows would not be recorded): ' +
  'send the statement as text, with a LIMIT / OFFSET or keyset loop for large reads.'

const CONTROL = /^\s*(?:savepoint|release|rollback\s+(?:work\s+|transaction\s+)?to)\b/i

/**
 * A `pg.Pool` for deliberate cross-tenant work: statements run unbound on the
 * owner pool, and each one (transaction control aside) is written to the audit
 * log once it has finished, failed ones included. With a writer that has a pool
 * of its own (`allObjectsPool` hands it the tenancy's audit pool) the record goes
 * there at once, so nothing run on the audited connection (a raw `begin` ...
 * `rollback`, a BEGIN inside a multi-statement text) can take it back. A writer
 * without one writes on the statement's connection: inside a transaction begun
 * by a BEGIN of its own the records wait for its COMMIT or ROLLBACK. A failed
 * audit write fails the call. `end()` leaves the owner pool open (it is shared).
 *
 * @example
 * ```ts
 * const pool = new AuditedPool({ pool: ownerPool, writer, context })
 * await pool.query('select count(*) from accounts') // + one audit_log row
 * ```
 */
export class AuditedPool extends PoolFacade {
  readonly #writer: AuditWriter
  readonly #context: () => AuditContext

  constructor(options: AuditedPoolOptions) {
    super(options.pool, false, options.acquireMs)
    this.#writer = options.writer
    this.#context = options.context
  }

  override query(...args: any[]): any {
    const call = parseQueryCall(args)
    if (!call) throw new InvalidInputError(NO_SUBMITTABLES)
    return settle(this.#poolQuery(call), call.callback)
  }

  async #poolQuery(call: QueryCall): Promise<pg.QueryResult> {
    const context = this.#context()
    const client = await this.acquireClient()
    try {
      return await this.record(client, context, call)
    } finally {
      client.release()
    }
  }

  /**
   * Runs one statement on `client` and writes its record: on the writer's own pool
   * at once, or, for a writer without one, on `client`, now or (`queue` given, inside
   * a transaction) after the transaction ends.
   *
   * @internal
   */
  async record(
    client: pg.PoolClient,
    context: AuditContext,
    call: QueryCall,
    queue?: ((db: pg.PoolClient) => Promise<void>)[],
  ): Promise<pg.QueryResult> {
    let result: pg.QueryResult | undefined
    let outcome: { rowCount: number | null; error?: unknown }
    try {
      result = await client.query(call.config)
      outcome = { rowCount: result.rowCount ?? result.rows?.length ?? null }
    } catch (error) {
      outcome = { rowCount: null, error }
    }
    const writer = this.#writer
    if (writer.hasOwnDb) await writer.recordAfter(context, call.config.text, outcome)
    else {
      const write = (db: pg.PoolClient) =>
        writer.recordAfter(context, call.config.text, outcome, db)
      if (queue) queue.push(write)
      else await write(client)
    }
    if (result === undefined) throw outcome.error
    return result
  }

  protected override hooks(client: pg.PoolClient): ClientHooks {
    let open = false
    let queue: ((db: pg.PoolClient) => Promise<void>)[] = []
    const run = async (call: QueryCall): Promise<pg.QueryResult> => {
      const text = call.config.text
      const kind = statementKind(text)
      // Transaction control on its own is not recorded; a text that goes on past it
      // (`begin; select ...`) is, or the statements after it would run unrecorded.
      const alone = isSingleStatement(text)
      if (kind === 'begin') {
        open = true
        return alone ? client.query(call.config) : this.record(client, this.#context(), call, queue)
      }
      if (kind === 'end') {
        open = false
        const writes = queue
        queue = []
        const ran = alone ? client.query(call.config) : this.record(client, this.#context(), call)
        const result = await ran.catch(async (err: unknown) => {
          for (const write of writes) await write(client)
          throw err
        })
        for (const write of writes) await write(client)
        return result
      }
      if (alone && (kind === 'set-transaction' || CONTROL.test(text))) {
        return client.query(call.config)
      }
      return this.record(client, this.#context(), call, open ? queue : undefined)
    }
    return {
      query(args) {
        const call = parseQueryCall(args)
        // A cursor or stream would run unrecorded: refused, as on the pool.
        if (!call) throw new InvalidInputError(NO_SUBMITTABLES)
        return settle(run(call), call.callback)
      },
      release(destroy) {
        const writes = queue
        queue = []
        if (!open && writes.length === 0) {
          client.release(destroy as boolean)
          return
        }
        // A transaction left open: end it, then write what it ran.
        open = false
        client
          .query('rollback')
          .then(async () => {
            for (const write of writes) await write(client)
          })
          .then(
            () => client.release(destroy as boolean),
            () => client.release(true),
          )
      },
    }
  }
}
