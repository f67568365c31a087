import type pg from 'pg'
import { RLS_SETTING } from '../schema/rls-policy.js'
import type { BindingMode } from './binding.js'
import {
  failedBeforeMainStatement,
  runPipelined,
  type Statement,
  submitPipelined,
} from './pipelined-query.js'

/**
 * The name the tenant-binding statement is prepared under on each connection
 * (prepared binding, the default on plain PostgreSQL).
 *
 * @example
 * ```ts
 * await pool.query('select 1 from pg_prepared_statements where name = $1', [BIND_STATEMENT_NAME])
 * ```
 */
export const BIND_STATEMENT_NAME = 'rowtenancy_bind'

/** The name of the sealed binding's prepared statement (its text and parameters differ). */
export const SEALED_BIND_STATEMENT_NAME = 'rowtenancy_bind_sealed'

/**
 * The name a binding mode's statement is prepared under, or undefined when it is
 * never prepared (`set_local`: a utility statement with the id inlined).
 *
 * @example
 * ```ts
 * preparedBindName('set_config') // 'rowtenancy_bind'
 * ```
 */
export function preparedBindName(mode: BindingMode): string | undefined {
  if (mode === 'set_config') return BIND_STATEMENT_NAME
  if (mode === 'sealed') return SEALED_BIND_STATEMENT_NAME
  return undefined
}

const OUR_NAMES = [BIND_STATEMENT_NAME, SEALED_BIND_STATEMENT_NAME]

/** SQLSTATE 26000: invalid_sql_statement_name ("prepared statement ... does not exist"). */
const MISSING_PREPARED = '26000'
/** SQLSTATE 42P05: duplicate_prepared_statement ("prepared statement ... already exists"). */
const DUPLICATE_PREPARED = '42P05'

/**
 * Forgets the session's sequence state (`lastval()`, `currval()` of every
 * sequence), which a write may set without changing anything else: sent after a
 * unit that wrote, so the next checkout cannot read another tenant's last id.
 */
const DISCARD_SEQUENCES: Statement = Object.freeze({ text: 'discard sequences' })

/**
 * What is sent to put a session back to the connection's defaults after work
 * that may have changed it (raw SQL), or before work on a connection someone
 * else used: one pipeline, no extra round trip when it rides with a statement.
 *
 * - Close of our statement names: whatever is prepared under them (ours, or one
 *   raw SQL put there) is gone, and the next bind parses ours again;
 * - `reset all`, `reset role`: every setting (search_path, ...) and the role back
 *   to the connection's defaults (startup options, role and database settings);
 * - `discard temp`: temporary tables, which would shadow real ones by name;
 * - `close all`: cursors, a `WITH HOLD` one holding rows read under this binding;
 * - `unlisten *`: channels this session listens on;
 * - `discard sequences`: `lastval()` / `currval()`, the ids of this session's last writes;
 * - `set_config('rowtenancy.tenant_id', '', false)`: no session-level tenant, also
 *   none that a role-level default (`alter role ... set`) put back with `reset all`.
 *
 * Named statements other than ours are left alone (one runs under the binding of the
 * moment, and an ORM may keep its own prepared; use PgBouncer's DISCARD ALL for those), and
 * so are session-level advisory locks (no rows; an app may hold one across statements).
 */
const RESET: readonly Statement[] = Object.freeze([
  ...OUR_NAMES.map((name) => Object.freeze({ text: '', close: name })),
  Object.freeze({ text: 'reset all' }),
  Object.freeze({ text: 'reset role' }),
  Object.freeze({ text: 'discard temp' }),
  Object.freeze({ text: 'close all' }),
  Object.freeze({ text: 'unlisten *' }),
  DISCARD_SEQUENCES,
  Object.freeze({ text: `select pg_catalog.set_config('${RLS_SETTING}', '', false)` }),
])

/** The last reset statement: a pipeline that carried it (and succeeded) left the session clean. */
const RESET_DONE = RESET[RESET.length - 1]!

/** The reset as sent inside a transaction: not {@link RESET_DONE}, so it marks nothing clean. */
const RESET_IN_TRANSACTION: readonly Statement[] = Object.freeze([
  ...RESET.slice(0, -1),
  Object.freeze({ ...RESET_DONE }),
])

/** A statement that opens a transaction (`BEGIN`, `START TRANSACTION`, with or without modes). */
const BEGINS = /^\s*(?:begin|start\s+transaction)\b/i

const PID_PROBE = 'select pg_catalog.pg_backend_pid() as pid'

const ROLLBACK: Statement = Object.freeze({ text: 'rollback' })

const ONLY_SEQUENCES: readonly Statement[] = Object.freeze([DISCARD_SEQUENCES])

/**
 * Whether `text` may advance a sequence in this session: any INSERT, UPDATE,
 * DELETE or MERGE (a default, a trigger or the statement itself may call
 * `nextval`), or a call of `nextval` / `setval`. Other function calls are the
 * caller's to judge (see `GuardedSession.markWrote`).
 *
 * @internal
 * @example
 * ```ts
 * mayAdvanceSequences('insert into accounts (name) values ($1)') // true
 * ```
 */
export function mayAdvanceSequences(text: string): boolean {
  return WRITE_KEYWORD.test(text)
}

const WRITE_KEYWORD = /\b(?:insert|update|delete|merge|nextval|setval)\b/i

interface ClientState {
  /** Checkouts of this client from the pool, counted by the pool's 'acquire' event. */
  acquired: number
  /** `acquired` when rowtenancy last released it clean; undefined: never. */
  seen: number | undefined
  /** Our bind statements prepared on this client's server session. */
  parsed: Set<string>
  /**
   * True: the client talks to its PostgreSQL backend directly (the backend's pid is
   * the one the connection announced); false: through a pooler; undefined: not known yet.
   */
  direct: boolean | undefined
  /** The probe of `direct` is in flight. */
  probing: boolean
}

/**
 * A transaction opened on the client before the pipeline that sends its bind
 * (a pg-style client sends BEGIN on its own): where the server lost the named
 * bind (a transaction pooler gave the transaction another server session), the
 * bind's error aborted the transaction, so {@link GuardedSession.run} rolls it
 * back and sends `opened` again before the pipeline, with the unnamed bind.
 *
 * @internal
 */
export interface OpenTransaction {
  /**
   * What ran in the transaction before the pipeline: BEGIN, SET TRANSACTION;
   * nothing that reads or writes. Undefined: the transaction cannot be opened
   * again (its BEGIN was part of a longer text), so the bind's error stands.
   */
  readonly opened: readonly Statement[] | undefined
  /** The pipeline's main statement may run twice (SET TRANSACTION, with the bind after it). */
  readonly mainRepeatable?: boolean | undefined
}

const guards = new WeakMap<pg.Pool, SessionGuard>()

/**
 * THE checkout protocol of rowtenancy, for one `pg.Pool`: what is sent at
 * checkout, before the first statement, and at release, so that no session state
 * survives a checkout. The Kysely driver, and `withBoundClient` (under
 * `withTenantClient` and the tenant pool), all go through it. Per checkout ({@link GuardedSession}):
 *
 * 1. **Checkout**: a client the pool handed to anyone else since rowtenancy last
 *    released it (counted by the pool's `acquire` event; a `pool.query` counts), or
 *    never seen, is *foreign*: the reset statements go before the binding.
 * 2. **Before the first statement**: [reset,] the binding, in the same network
 *    write as the statement. The `set_config` binding is a named statement parsed
 *    once per connection (Bind + Execute afterwards); where the server session
 *    changes under the client (a transaction pooler) the first "prepared statement
 *    does not exist / already exists" error, raised by the bind before the user's
 *    statement ran, switches this pool to the unnamed bind for good and the
 *    pipeline is sent again: the statement runs once.
 * 3. **After raw SQL**: work that is not a Kysely builder query (raw SQL, any
 *    statement through `withTenantClient`'s client) marks the session dirty; the
 *    reset statements ride after it (in the same pipeline, or with COMMIT/ROLLBACK).
 * 4. **Release**: a session still dirty (its last pipeline failed) is reset in one
 *    round trip, or destroyed when that fails.
 *
 * A plain `pool.query` that runs after rowtenancy's work therefore finds no tenant,
 * no role, no search_path and no temporary tables left by it; what a foreign query
 * leaves behind is reset before rowtenancy's next work on that connection. What
 * cannot be reset: role defaults the runtime role sets for itself (`alter role
 * current_user set search_path = ...`; `reset all` restores them; PostgreSQL 15
 * refuses it for `rowtenancy.tenant_id` to non-superusers),
 * and what one foreign query leaves for the next foreign query.
 *
 * @internal
 * @example
 * ```ts
 * const session = SessionGuard.for(pool).checkout(await pool.connect())
 * await session.run([session.bind(bind)], { text: 'select * from accounts' })
 * await session.release()
 * ```
 */
export class SessionGuard {
  readonly #clients = new WeakMap<object, ClientState>()
  /** A server session changed under a client: bind with the unnamed statement from now on. */
  #unnamed = false
  /** A client of this pool talks through a pooler (see {@link SessionGuard.pooled}). */
  #pooled = false
  #assumeDirect = false

  private constructor(pool: pg.Pool) {
    pool.on('acquire', (client) => {
      this.#state(client).acquired++
    })
  }

  /** The guard of `pool` (one per pool). */
  static for(pool: pg.Pool): SessionGuard {
    let guard = guards.get(pool)
    if (!guard) {
      guard = new SessionGuard(pool)
      guards.set(pool, guard)
    }
    return guard
  }

  /** False once a pooler swapped a session under a client, or was found in front: the bind goes unnamed. */
  get prepares(): boolean {
    return !this.#unnamed && !this.#pooled
  }

  /** Starts guarding one checkout of `client` (just acquired from this guard's pool). */
  checkout(client: pg.PoolClient): GuardedSession {
    const state = this.#state(client)
    const foreign = state.seen === undefined || state.acquired !== state.seen + 1
    if (foreign) state.parsed.clear()
    if (state.direct === undefined && !state.probing) {
      if (this.#assumeDirect) state.direct = true
      else this.#probe(client, state)
    }
    return new GuardedSession(this, client, state, foreign)
  }

  /** True once a client of this pool was found to talk through a pooler. */
  get pooled(): boolean {
    return this.#pooled
  }

  /** @internal */
  fallBackToUnnamed(): void {
    this.#unnamed = true
  }

  /**
   * Takes every client of this pool for a direct one without asking: a pooler the
   * probe cannot see (one that passes the backend's pid on). Tests of the
   * lost-bind recovery use it behind PgBouncer.
   *
   * @internal
   */
  assumeDirect(): void {
    this.#assumeDirect = true
  }

  /**
   * Whether `client` talks to its backend directly: a pooler (PgBouncer and its
   * kind) announces a cancel key of its own, so the backend's pid differs from
   * the one the connection got. Queued ahead of the checkout's first statement;
   * until it answers, the client counts as pooled.
   */
  #probe(client: pg.PoolClient, state: ClientState): void {
    state.probing = true
    const announced = (client as unknown as { processID?: unknown }).processID
    client.query(PID_PROBE).then(
      (result) => {
        state.probing = false
        state.direct = Number((result.rows[0] as { pid?: unknown } | undefined)?.pid) === announced
        if (!state.direct) this.#pooled = true
      },
      () => {
        state.probing = false
      },
    )
  }

  #state(client: object): ClientState {
    let state = this.#clients.get(client)
    if (!state) {
      state = {
        acquired: 0,
        seen: undefined,
        parsed: new Set(),
        direct: undefined,
        probing: false,
      }
      this.#clients.set(client, state)
    }
    return state
  }
}

/**
 * One checkout under a {@link SessionGuard}: builds the opening statements, runs
 * pipelines with the lost-statement recovery, and resets / releases the client.
 *
 * @internal
 */
export class GuardedSession {
  readonly client: pg.PoolClient
  readonly #guard: SessionGuard
  readonly #state: ClientState
  /** Reset before the next binding (a foreign or unknown session). */
  #resetFirst: boolean
  /** Raw SQL ran since the last reset. */
  #dirty = false
  /** A write ran since the sequence state was last discarded (see {@link mayAdvanceSequences}). */
  #wrote = false
  /**
   * Counts the marks (raw SQL, a write). A pipeline that carries the reset clears
   * only what was marked before it went out: a statement sent concurrently after
   * it on the same client runs after that reset on the wire.
   */
  #marks = 0
  #discard = false

  constructor(guard: SessionGuard, client: pg.PoolClient, state: ClientState, foreign: boolean) {
    this.#guard = guard
    this.client = client
    this.#state = state
    this.#resetFirst = foreign
  }

  /** Raw SQL ran (or will run) in this checkout: the session needs a reset after it. */
  markDirty(): void {
    this.#dirty = true
    this.#marks++
  }

  /**
   * `text` ran (or will run) in this checkout as a trusted statement: when it
   * may advance a sequence, the session's sequence state is discarded after the
   * unit (`discard sequences` rides with it), so `lastval()` / `currval()` in the
   * next checkout cannot return this tenant's ids.
   */
  noteWrite(text: string): void {
    if (mayAdvanceSequences(text)) this.markWrote()
  }

  /** A trusted statement that may advance a sequence ran: `discard sequences` follows the unit. */
  markWrote(): void {
    this.#wrote = true
    this.#marks++
  }

  /** True when raw SQL ran since the last reset. */
  get dirty(): boolean {
    return this.#dirty
  }

  /** Destroy the client at release instead of returning it to the pool. */
  discard(): void {
    this.#discard = true
  }

  /**
   * The statements that open a unit of work before `rest` (e.g. `[begin]`): the
   * reset when the session is foreign, then `rest`, then the binding, sent as the
   * named statement `prepareAs` (see {@link preparedBindName}) unless the pool fell
   * back to the unnamed bind.
   */
  opening(
    rest: readonly Statement[],
    bind: Statement | undefined,
    prepareAs: string | undefined,
  ): Statement[] {
    const out: Statement[] = []
    const first = rest[0]
    if (first !== undefined && BEGINS.test(first.text)) {
      // BEGIN with modes must be the transaction's first statement: the reset after it.
      out.push(first, ...this.resetAfterBegin(), ...rest.slice(1))
    } else {
      if (this.#takeReset()) out.push(...RESET)
      out.push(...rest)
    }
    if (bind) out.push(this.bindInTransaction(bind, prepareAs))
    return out
  }

  /**
   * The reset to send right after a BEGIN that opens a unit (the statements an
   * `opening` would put first), or none. It runs inside the transaction, so a
   * ROLLBACK undoes part of it: the session stays marked for the reset that
   * follows the unit.
   */
  resetAfterBegin(): readonly Statement[] {
    if (!this.#takeReset()) return []
    this.markDirty()
    return RESET_IN_TRANSACTION
  }

  /**
   * Whether a unit starting now needs the reset first: a foreign session, or a
   * client not known to talk to its backend directly (through a pooler each unit
   * may get another server session, which other clients of the pooler used
   * meanwhile).
   */
  #takeReset(): boolean {
    if (!this.#resetFirst && this.#state.direct === true) return false
    this.#resetFirst = false
    this.#state.parsed.clear()
    return true
  }

  /**
   * The bind as sent inside a transaction already open on this checkout: the
   * named statement `prepareAs` where the client is known to talk to its backend
   * directly and the pool did not fall back, else the unnamed bind.
   */
  bindInTransaction(bind: Statement, prepareAs: string | undefined): Statement {
    return prepareAs && this.#guard.prepares && this.#state.direct === true
      ? this.#named(bind, prepareAs)
      : bind
  }

  /**
   * The statements to send after the unit's work: the reset when raw SQL ran,
   * `discard sequences` when only a write did, else none.
   */
  closing(): readonly Statement[] {
    return this.#dirty ? RESET : this.#wrote ? ONLY_SEQUENCES : []
  }

  /**
   * `runPipelined` with the checkout protocol: a named bind the server lost (or
   * already had: a pooler swapped the session) fails BEFORE the main statement,
   * so the pool switches to the unnamed bind and the pipeline is sent once more
   * (after a ROLLBACK when it had opened a transaction; with `open`, after a
   * ROLLBACK and the statements that had opened it). A pipeline that carried
   * the reset marks the session clean when it succeeds.
   */
  run(
    before: readonly Statement[],
    main: Statement,
    after: readonly Statement[] = [],
    open?: OpenTransaction,
  ): Promise<pg.QueryResult> {
    const marks = this.#marks
    return new Promise((resolve, reject) => {
      submitPipelined(this.client, before, main, after, (err, result) => {
        if (err) {
          this.#noteFailed(after)
          this.#retryUnnamed(err, before, main, after, open).then(resolve, reject)
          return
        }
        this.#noteSent(after, marks)
        resolve(result as pg.QueryResult)
      })
    })
  }

  #retryUnnamed(
    err: unknown,
    before: readonly Statement[],
    main: Statement,
    after: readonly Statement[],
    open: OpenTransaction | undefined,
  ): Promise<pg.QueryResult> {
    if (!this.#lostBind(err, main, open)) return Promise.reject(err)
    this.#guard.fallBackToUnnamed()
    this.#state.parsed.clear()
    // Not sent again (the error stands, the next unit binds unnamed): a transaction
    // opened earlier that cannot be opened again, or statements sent concurrently
    // and queued behind this pipeline, which run in the aborted transaction and
    // would come before a resend.
    if ((open && !open.opened) || queuedBehind(this.client)) return Promise.reject(err)
    const unnamed = (s: Statement): Statement =>
      s.prepared !== undefined && OUR_NAMES.includes(s.prepared)
        ? { text: s.text, values: s.values }
        : s
    // The failed bind aborted the transaction it ran in: end it, then open it again.
    // Both are queued in this tick: nothing sent meanwhile can come between them.
    const reopen = open !== undefined || before.some((s) => BEGINS.test(s.text))
    const rollback = reopen ? this.client.query('rollback') : undefined
    const sent = this.#send(
      [...(open?.opened ?? []), ...before.map(unnamed)],
      unnamed(main),
      after.map(unnamed),
    )
    if (!rollback) return sent
    return Promise.all([rollback, sent]).then(([, result]) => result)
  }

  /**
   * Returns the client to its pool: reset first when raw SQL ran and no reset
   * followed (its pipeline failed), rolled back when still in a transaction;
   * destroyed when either fails. Returns undefined when the client went back at
   * once (idle and clean: nothing to send), else a promise of the release.
   */
  release(): Promise<void> | undefined {
    const status = this.client.getTransactionStatus()
    if ((status === 'I' || status === null) && (!(this.#dirty || this.#wrote) || this.#discard)) {
      this.#giveBack()
      return undefined
    }
    return this.#releaseAfterCleanUp(status)
  }

  async #releaseAfterCleanUp(status: string | null): Promise<void> {
    // ROLLBACK and the reset in one pipeline: a transaction pooler may hand the server
    // session to another client as soon as the transaction ends.
    const reset = this.#discard ? [] : this.#dirty ? RESET : this.#wrote ? ONLY_SEQUENCES : []
    const sent = status !== 'I' && status !== null ? [ROLLBACK, ...reset] : reset
    try {
      if (sent.length > 0)
        await runPipelined(this.client, sent.slice(0, -1), sent[sent.length - 1]!)
      if (reset === RESET) this.#markClean()
      else if (reset === ONLY_SEQUENCES) this.#wrote = false
    } catch {
      this.#discard = true
    }
    this.#giveBack()
  }

  #giveBack(): void {
    // A foreign session whose reset never went out (nothing ran) stays foreign.
    this.#state.seen = this.#discard || this.#resetFirst ? undefined : this.#state.acquired
    this.client.release(this.#discard)
  }

  #markClean(): void {
    this.#dirty = false
    this.#wrote = false
    this.#state.parsed.clear()
  }

  /**
   * After a pipeline succeeded: what its closing statements cleaned, unless
   * something was marked after it went out (`marks`: the count then).
   */
  #noteSent(after: readonly Statement[], marks: number): void {
    if (this.#marks !== marks) return
    if (after.includes(RESET_DONE)) this.#markClean()
    else if (after.includes(DISCARD_SEQUENCES)) this.#wrote = false
  }

  /**
   * After a pipeline failed: the cleaning it carried did not run. Marked again,
   * since another pipeline queued on the same client may have cleared the marks
   * this one's statement had set (statements sent concurrently).
   */
  #noteFailed(after: readonly Statement[]): void {
    if (after.includes(RESET_DONE)) this.#dirty = true
    if (after.includes(RESET_DONE) || after.includes(DISCARD_SEQUENCES)) this.#wrote = true
  }

  #send(
    before: readonly Statement[],
    main: Statement,
    after: readonly Statement[],
  ): Promise<pg.QueryResult> {
    const marks = this.#marks
    return runPipelined(this.client, before, main, after).then(
      (result) => {
        this.#noteSent(after, marks)
        return result
      },
      (err: unknown) => {
        this.#noteFailed(after)
        throw err
      },
    )
  }

  /** The named form of the bind: Parse on the connection's first use, then Bind + Execute only. */
  #named(bind: Statement, name: string): Statement {
    const parse = !this.#state.parsed.has(name)
    // Marked before the pipeline goes out: a named statement outlives an error
    // later in the same pipeline (it is not transactional).
    this.#state.parsed.add(name)
    return { text: bind.text, values: bind.values, prepared: name, parse }
  }

  /**
   * A pipeline failed at our named bind, before the user's statement ran (or the
   * bind was the main statement: nothing but BEGIN / the reset ran before it; or
   * the main statement may run again: `open.mainRepeatable`).
   */
  #lostBind(err: unknown, main: Statement, open: OpenTransaction | undefined): boolean {
    const mainIsBind = main.prepared !== undefined && OUR_NAMES.includes(main.prepared)
    if (!failedBeforeMainStatement(err) && !mainIsBind && !open?.mainRepeatable) return false
    const code = (err as { code?: unknown }).code
    const message = String((err as { message?: unknown }).message ?? '')
    return (
      (code === MISSING_PREPARED || code === DUPLICATE_PREPARED) &&
      OUR_NAMES.some((name) => message.includes(`"${name}"`))
    )
  }
}

/**
 * Whether statements are queued on `client` behind the one running (sent
 * concurrently on one checked-out client): pg runs them in order, so they come
 * before anything sent now.
 */
function queuedBehind(client: pg.PoolClient): boolean {
  const c = client as unknown as { _queryQueue?: unknown[]; _sentQueryQueue?: unknown[] }
  return (c._queryQueue?.length ?? 0) > 0 || (c._sentQueryQueue?.length ?? 0) > 0
}
