import pg from 'pg'
import { tryCurrentTenant } from '../context/index.js'
import { BindCache } from '../db/bind-cache.js'
import { type BindingMode, beginStatement, bindStatement, implicitScope } from '../db/binding.js'
import {
  BINDING_OPTION_NAMES,
  type BindingOptions,
  resolveBindingOptions,
} from '../db/binding-options.js'
import { explainUnreachable } from '../db/connect.js'
import { enterStatement } from '../db/hybrid-binding.js'
import { isSessionNeutral, neutralStatementsTrusted } from '../db/neutral-statement.js'
import type { Statement } from '../db/pipelined-query.js'
import { assertSafeRuntimeRole, inspectRuntimeRole } from '../db/role-check.js'
import { type GuardedSession, preparedBindName, SessionGuard } from '../db/session-guard.js'
import { ConfigError, MissingTenantError, UnsafeRoleError } from '../errors/index.js'
import { DEFAULTS } from '../sql/defaults.js'
import type { TenantIdType } from '../tenants/id-types.js'
import { unboundEnterStatement } from '../tenants/serving.js'
import {
  type ClientHooks,
  PoolFacade,
  parseQueryCall,
  type QueryCall,
  settle,
} from './pool-facade.js'
import { isSingleStatement, statementKind } from './statement-kind.js'

/**
 * Options of {@link TenantPool}: the binding options `createTenancy` takes
 * (`tenantIdType`, `tenantColumn`, `binding`, `sealKey`, `allowUnsafeRole`,
 * `prepareBind`; validated by the same code), the pool, and the pool's own.
 */
export interface TenantPoolOptions extends Omit<BindingOptions, 'timeouts'> {
  /** The runtime pool (a role that owns nothing and has no BYPASSRLS), or a pg pool config. */
  readonly pool: pg.Pool | pg.PoolConfig
  /** With no tenant in context, throw `MissingTenantError` instead of running the statement unbound. */
  readonly requireTenant?: boolean | undefined
  /** Run the start-up role check (default true). */
  readonly checkRole?: boolean | undefined
  /** Where the unsafe-role warning goes; `console.warn` by default. */
  readonly warn?: ((message: string) => void) | undefined
  /** Whether `end()` also ends `pool` (default true; false when the pool is shared, e.g. with a tenancy). */
  readonly endPool?: boolean | undefined
  /**
   * How long a statement or `connect()` waits for a free connection before it
   * fails with `DatabaseUnavailableError` (reason `pool-timeout`): 5000 ms by
   * default, as `createTenancy`'s `timeouts.acquireMs`; 0 waits forever.
   */
  readonly acquireMs?: number | undefined
  /**
   * Hybrid serving during an online migration (`tenantPoolOf` sets it from the
   * tenancy's `hybrid` option): each statement opens with
   * `rowtenancy_enter(tenant, null)`, which serves the tenant from its legacy
   * schema (search_path) or the shared tables (RLS), decided under its fence.
   */
  readonly serving?: { readonly schema: string } | undefined
}

const KNOWN = new Set<string>([
  'pool',
  ...BINDING_OPTION_NAMES.filter((name) => name !== 'timeouts'),
  'requireTenant',
  'checkRole',
  'warn',
  'endPool',
  'acquireMs',
  'serving',
])
const COMMIT: Statement = Object.freeze({ text: 'commit' })

/**
 * A `pg.Pool` that binds the current tenant (`runWithTenant`) for Row Level
 * Security on every statement, so any library written for `pg.Pool` (Drizzle,
 * Prisma's adapter-pg, Knex's `connectionPool`, TypeORM's `driver`) runs under
 * RLS without wrapping each request in a transaction:
 *
 * - a lone statement goes out as `set_config(...)` + the statement in one
 *   network write (one round trip, one implicit transaction);
 * - a transaction the library opens (`BEGIN` / `START TRANSACTION`) is bound
 *   once: the bind rides with its next statement (after a `SET TRANSACTION`, if
 *   that comes first); savepoints are left alone;
 * - every checkout follows rowtenancy's checkout protocol (`SessionGuard`, as
 *   the Kysely driver and `withTenantClient` do): the library's SQL counts as
 *   raw SQL, so the session reset (settings, role, temporary tables, a
 *   session-level tenant) rides in the same write after it, and a client given
 *   back inside a transaction is rolled back: nothing reaches the next checkout.
 *
 * With no tenant in context a statement runs unbound (RLS shows no tenant's
 * rows), or throws `MissingTenantError` with `requireTenant: true`. Before the
 * first statement the runtime role is checked as `createTenancy` does
 * (`UnsafeRoleError` for a superuser, BYPASSRLS role or table owner).
 * A streamed query (cursor) with a tenant must run inside a transaction.
 *
 * @example
 * ```ts
 * const pool = new TenantPool({ pool: new pg.Pool({ connectionString }) })
 * await runWithTenant(7, () => pool.query('select * from accounts'))
 * // one write: select set_config('rowtenancy.tenant_id', $1, true); select * from accounts
 * ```
 */
export class TenantPool extends PoolFacade {
  readonly #type: TenantIdType
  readonly #options: TenantPoolOptions
  readonly #requireTenant: boolean
  #mode: BindingMode = 'set_config'
  #prepareAs: string | undefined
  readonly #guard: SessionGuard
  #ready: Promise<void> | undefined
  #readyDone = false
  readonly #binds = new BindCache()
  /** The runtime role cannot create objects: statements judged neutral skip the reset. */
  #neutralTrusted = false

  constructor(options: TenantPoolOptions) {
    checkOptions(options)
    const inner = options.pool instanceof pg.Pool ? options.pool : new pg.Pool(options.pool)
    super(inner, options.endPool !== false || !(options.pool instanceof pg.Pool), options.acquireMs)
    this.#options = Object.freeze({ ...options })
    this.#type = options.tenantIdType ?? DEFAULTS.tenantIdType
    this.#requireTenant = options.requireTenant === true
    this.#guard = SessionGuard.for(inner)
    const binding = options.binding ?? 'auto'
    if (binding !== 'auto') this.#mode = binding
    this.#syncPrepared()
  }

  #syncPrepared(): void {
    // The enter statement of hybrid serving is not the text prepared under the bind's name.
    const named = this.#options.prepareBind !== false && !this.#options.serving
    this.#prepareAs = named ? preparedBindName(this.#mode) : undefined
  }

  /** The checkout protocol of the inner pool. @internal */
  get guard(): SessionGuard {
    return this.#guard
  }

  /** The prepared-statement name of the bind, or undefined (unnamed). @internal */
  get prepareAs(): string | undefined {
    return this.#prepareAs
  }

  /** The binding in use (`set_config` or `set_local`; known after the first statement with `auto`). */
  get mode(): BindingMode {
    return this.#mode
  }

  /** Whether statements without a tenant are refused (`requireTenant`). */
  get requiresTenant(): boolean {
    return this.#requireTenant
  }

  /**
   * Runs one statement: bound to the current tenant in one round trip, or
   * unbound without one (see the class). pg's shapes: `(text, values?)`,
   * `(config)`, with or without a callback.
   */
  override query(...args: any[]): any {
    const call = parseQueryCall(args)
    if (!call) {
      throw new ConfigError(
        'TenantPool.query() takes no cursor or stream object: check out a client (pool.connect()) and ' +
          'run it inside a transaction (BEGIN ... COMMIT), where the tenant is bound.',
      )
    }
    return settle(this.#poolQuery(call), call.callback)
  }

  async #poolQuery(call: QueryCall): Promise<pg.QueryResult> {
    if (!this.#readyDone) await this.ready()
    const bind = this.#bindForContext()
    const client = await this.acquireClient()
    const session = this.#guard.checkout(client)
    let result: pg.QueryResult
    try {
      result = await this.runLone(session, bind, call.config)
    } catch (err) {
      await session.release()
      throw err
    }
    const released = session.release()
    if (released) await released
    return result
  }

  /** True once the start-up check has passed. */
  get isReady(): boolean {
    return this.#readyDone
  }

  /**
   * Checks the runtime role (and, with `binding: 'auto'`, looks for Citus) once;
   * every statement waits for it. A refused role stays refused.
   */
  ready(): Promise<void> {
    if (this.#readyDone) return Promise.resolve()
    this.#ready ??= this.#check().then(
      () => {
        this.#readyDone = true
      },
      (err: unknown) => {
        if (!(err instanceof UnsafeRoleError)) this.#ready = undefined
        throw err
      },
    )
    return this.#ready
  }

  async #check(): Promise<void> {
    const { binding = 'auto', checkRole = true } = this.#options
    const inner = this.inner
    this.#neutralTrusted = await explainUnreachable(inner, () => neutralStatementsTrusted(inner))
    if (!checkRole && binding !== 'auto') return
    const facts = await explainUnreachable(inner, () =>
      inspectRuntimeRole(inner, { tenantColumn: this.#options.tenantColumn }),
    )
    if (binding === 'auto') {
      this.#mode = facts.citus ? 'set_local' : 'set_config'
      this.#syncPrepared()
      this.#binds.clear()
    }
    if (this.#options.serving && this.#mode !== 'set_config') {
      throw new ConfigError(
        `serving (an online migration) needs the set_config binding, not ${this.#mode}: ` +
          'an online migration runs only on plain PostgreSQL.',
      )
    }
    if (checkRole) {
      assertSafeRuntimeRole(facts, {
        allowUnsafeRole: this.#options.allowUnsafeRole,
        warn: this.#options.warn,
      })
    }
  }

  /**
   * The bind statement for the tenant in context; `undefined` without one
   * (`MissingTenantError` with `requireTenant`). Validates the id (InvalidTenantIdError).
   */
  #bindForContext(): Statement | undefined {
    const tenantId = tryCurrentTenant()
    const serving = this.#options.serving
    if (tenantId === undefined) {
      if (this.#requireTenant) throw new MissingTenantError('A statement on this TenantPool')
      // Hybrid: entered too, so no legacy schema stays on its search_path.
      return serving ? unboundEnterStatement(serving.schema) : undefined
    }
    return this.#binds.get(tenantId, (id) =>
      serving
        ? enterStatement(serving.schema, this.#type, id, null)
        : bindStatement(this.#mode, this.#type, id, this.#options.sealKey),
    )
  }

  /**
   * Whether `config` provably leaves the session as it found it, so no reset
   * follows it: a text {@link isSessionNeutral} judges neutral, sent unnamed, on
   * a database where the runtime role cannot create objects.
   *
   * @internal
   */
  leavesSessionAlone(config: QueryCall['config']): boolean {
    return this.#neutralTrusted && config.name === undefined && isSessionNeutral(config.text)
  }

  /**
   * Records what `config` will do to the checkout's session: raw SQL that does
   * not {@link leavesSessionAlone} gets the full reset after it, a neutral write
   * `discard sequences` (its ids stay out of the next checkout's `lastval()`).
   *
   * @internal
   */
  noteStatement(session: GuardedSession, config: QueryCall['config']): void {
    if (this.leavesSessionAlone(config)) session.noteWrite(config.text)
    else session.markDirty()
  }

  /**
   * A lone statement (no transaction open on the session's client): bound with
   * `bind` (unbound without one). The library's SQL counts as raw SQL, so the
   * session reset rides after it in the same write, unless it {@link leavesSessionAlone}.
   *
   * @internal
   */
  runLone(
    session: GuardedSession,
    bind: Statement | undefined,
    config: QueryCall['config'],
  ): Promise<pg.QueryResult> {
    this.noteStatement(session, config)
    const main = toStatement(config)
    if (!isSingleStatement(main.text)) return this.#runSimpleProtocol(session, bind, config)
    if (!bind)
      return session.run(session.opening([], undefined, undefined), main, session.closing())
    const { before, after } = implicitScope(this.#mode, bind)
    const opening = session.opening(before.slice(0, -1), bind, this.#prepareAs)
    // The reset rides before the closing COMMIT of a SET LOCAL scope, else at the end.
    const closing = session.closing()
    const sent = session.run(opening, main, closing.length ? [...closing, ...after] : after)
    if (before[0]?.text !== 'begin') return sent
    // pg reports the error before the ReadyForQuery that shows the aborted transaction:
    // when this pipeline opened one (SET LOCAL binding), roll back regardless.
    return sent.catch(async (err: unknown) => {
      await rollbackQuietly(session)
      throw err
    })
  }

  /** Several statements in one text need the simple protocol; the reset follows at release. */
  async #runSimpleProtocol(
    session: GuardedSession,
    bind: Statement | undefined,
    config: QueryCall['config'],
  ): Promise<pg.QueryResult> {
    const client = session.client
    const opening = session.opening([beginStatement()], bind, this.#prepareAs)
    // No bind and no reset to send: the text alone.
    if (opening.length === 1) return client.query(config)
    await session.run(opening.slice(0, -1), opening[opening.length - 1]!)
    try {
      const result = await client.query(config)
      await client.query(COMMIT.text)
      return result
    } catch (err) {
      await rollbackQuietly(session)
      throw err
    }
  }

  /** The role check runs before the first checkout (it needs a connection of its own). */
  protected override checkout(): Promise<pg.PoolClient> {
    if (!this.#readyDone) return this.ready().then(() => super.checkout())
    return super.checkout()
  }

  protected override hooks(client: pg.PoolClient): ClientHooks {
    return new BoundClient(this, this.#guard.checkout(client))
  }

  /** @internal The per-checkout view of the pool's binding. */
  bindForContext(): Statement | undefined {
    return this.#bindForContext()
  }
}

/**
 * The hooks of one checked-out client: tracks the transaction the library
 * opens and binds it once; binds lone statements; resets and cleans up on
 * release (through the checkout's {@link GuardedSession}).
 */
class BoundClient implements ClientHooks {
  readonly #pool: TenantPool
  readonly #session: GuardedSession
  /** A transaction was opened (BEGIN sent) and not yet ended. */
  #open = false
  /** The bind still to send in the open transaction (with its next statement). */
  #pending: Statement | undefined
  /** The open transaction's first statement is still to come (the reset and the bind go with it). */
  #first = false
  /**
   * What opened the transaction before the bind went out (BEGIN, SET TRANSACTION),
   * to send again when a pooler lost the named bind; undefined: not replayable.
   */
  #opened: Statement[] | undefined
  #released = false

  constructor(pool: TenantPool, session: GuardedSession) {
    this.#pool = pool
    this.#session = session
  }

  query(args: readonly unknown[]): unknown {
    if (this.#released) {
      throw new Error(
        'This client was released to the pool; check out another with pool.connect().',
      )
    }
    const call = parseQueryCall(args)
    if (!call) return this.#submit(args[0] as pg.Submittable)
    return settle(this.#dispatch(call), call.callback)
  }

  /** A lone statement outside a transaction goes straight to `runLone`; the rest through {@link #query}. */
  #dispatch(call: QueryCall): Promise<pg.QueryResult> {
    const pool = this.#pool
    if (this.#open || !pool.isReady) return this.#query(call)
    const kind = statementKind(call.config.text)
    if (kind === 'begin') return this.#query(call)
    // A transaction this checkout did not see open (BEGIN inside a multi-statement text, or
    // sent as a cursor or stream object): a lone statement's binding would outlast it there.
    const status = this.#session.client.getTransactionStatus()
    if (kind !== 'end' && (status === 'T' || status === 'E')) {
      return Promise.reject(
        new ConfigError(
          'A transaction is open on this client that the TenantPool did not see begin (BEGIN inside ' +
            'a multi-statement text, or sent as a cursor or stream object). Send BEGIN as a statement ' +
            'of its own, or end that transaction (COMMIT / ROLLBACK) first.',
        ),
      )
    }
    let bind: Statement | undefined
    try {
      bind = kind === 'end' ? undefined : pool.bindForContext()
    } catch (err) {
      return Promise.reject(err)
    }
    return pool.runLone(this.#session, bind, call.config)
  }

  release(destroy: boolean | Error | undefined): void {
    if (this.#released) return
    this.#released = true
    const session = this.#session
    const open = this.#open
    this.#open = false
    this.#pending = undefined
    this.#opened = undefined
    this.#first = false
    if (destroy) {
      session.discard()
      void session.release()
      return
    }
    // Never hand a client back inside a transaction (pg's status may lag): roll back, reset.
    if (open) void rollbackQuietly(session).then(() => session.release())
    else void session.release()
  }

  async #query(call: QueryCall): Promise<pg.QueryResult> {
    const pool = this.#pool
    if (!pool.isReady) await pool.ready()
    const session = this.#session
    const client = session.client
    const { config } = call
    const kind = statementKind(config.text)
    if (this.#open) {
      pool.noteStatement(session, config)
      const pending = this.#pending
      if (kind === 'end') {
        this.#open = false
        this.#pending = undefined
        this.#opened = undefined
        this.#first = false
        // The reset rides with the COMMIT / ROLLBACK.
        if (!isSingleStatement(config.text)) return client.query(config)
        return session.run([], toStatement(config), session.closing())
      }
      if (kind === 'begin' || !this.#first) return client.query(config)
      // The transaction's first statement: the reset (through a pooler) and the bind go with it.
      this.#first = false
      this.#pending = undefined
      const opened = this.#opened
      this.#opened = undefined
      const opening = this.#opening(pending)
      if (opening.length === 0) return client.query(config)
      if (!isSingleStatement(config.text)) {
        await session.run(opening.slice(0, -1), opening[opening.length - 1]!, [], { opened })
        return client.query(config)
      }
      // SET TRANSACTION must precede every query of the transaction, the bind included.
      return kind === 'set-transaction'
        ? session.run([], toStatement(config), opening, { opened, mainRepeatable: true })
        : session.run(opening, toStatement(config), [], { opened })
    }
    if (kind === 'begin') {
      // Marked before the BEGIN is sent: a statement issued meanwhile belongs to the transaction.
      this.#pending = pool.bindForContext()
      this.#open = true
      this.#first = true
      pool.noteStatement(session, config)
      try {
        if (!isSingleStatement(config.text)) {
          this.#opened = undefined
          return await client.query(config)
        }
        this.#opened = [toStatement(config)]
        return await session.run([], toStatement(config))
      } catch (err) {
        this.#open = false
        this.#pending = undefined
        this.#opened = undefined
        this.#first = false
        throw err
      }
    }
    const bind = kind === 'end' ? undefined : pool.bindForContext()
    return pool.runLone(session, bind, config)
  }

  /**
   * What goes before the open transaction's first statement: the reset where the
   * session needs one (through a pooler: the transaction's server session served
   * other clients), then the bind (named as `prepareAs` allows).
   */
  #opening(
    bind: Statement | undefined,
    prepareAs: string | undefined = this.#pool.prepareAs,
  ): Statement[] {
    const session = this.#session
    const out = [...session.resetAfterBegin()]
    if (bind) out.push(session.bindInTransaction(bind, prepareAs))
    return out
  }

  #submit(submittable: pg.Submittable): unknown {
    const session = this.#session
    session.markDirty()
    if (this.#open) {
      if (this.#first) {
        const opening = this.#opening(this.#pending, undefined)
        this.#first = false
        this.#pending = undefined
        this.#opened = undefined
        // Queued ahead of the cursor on the same connection, unnamed: a lost named bind
        // could not be sent again ahead of the cursor.
        if (opening.length > 0) {
          session.run(opening.slice(0, -1), opening[opening.length - 1]!).catch(() => {})
        }
      }
      return session.client.query(submittable)
    }
    if (this.#pool.bindForContext()) {
      throw new ConfigError(
        'A streamed query (cursor) with a tenant runs only inside a transaction on a TenantPool: ' +
          'send BEGIN first (e.g. open a transaction in your ORM), then stream.',
      )
    }
    return session.client.query(submittable)
  }
}

function toStatement(config: QueryCall['config']): Statement {
  return {
    text: config.text,
    values: config.values,
    rowMode: config.rowMode,
    types: config.types,
  }
}

/** Sends ROLLBACK; a failure marks the client to be destroyed at release. */
async function rollbackQuietly(session: GuardedSession): Promise<void> {
  try {
    await session.client.query('rollback')
  } catch {
    session.discard()
  }
}

function checkOptions(options: TenantPoolOptions): void {
  if (options === null || typeof options !== 'object') {
    throw new ConfigError('TenantPool needs options: { pool } (a pg.Pool of the runtime role).')
  }
  for (const key of Object.keys(options)) {
    if (!KNOWN.has(key)) {
      throw new ConfigError(
        `Unknown TenantPool option ${JSON.stringify(key)}; known options: ${[...KNOWN].join(', ')}.`,
      )
    }
  }
  if (!options.pool || typeof options.pool !== 'object') {
    throw new ConfigError(
      'TenantPool needs pool: a pg.Pool of the runtime role, or a pg pool config ({ connectionString }).',
    )
  }
  // Anything else with a connect() (a tenancy's RoutingPool, a pg.Pool of another copy of pg)
  // would be read as a config with no settings: a pool of the PG* environment defaults.
  if (
    !(options.pool instanceof pg.Pool) &&
    typeof (options.pool as { connect?: unknown }).connect === 'function'
  ) {
    throw new ConfigError(
      'TenantPool needs pool: a pg.Pool of the runtime role, and this pool is not a pg.Pool of the "pg" ' +
        'rowtenancy resolves: a tenancy with placement (several databases) routes per tenant, which the ' +
        'tenant pool does not; or another copy of "pg" (deduplicate it).',
    )
  }
  resolveBindingOptions({ ...options, timeouts: undefined })
  if (
    options.serving &&
    (options.binding ?? 'auto') !== 'auto' &&
    options.binding !== 'set_config'
  ) {
    throw new ConfigError('serving (an online migration) needs the set_config binding.')
  }
  for (const key of ['requireTenant', 'checkRole', 'endPool'] as const) {
    if (options[key] !== undefined && typeof options[key] !== 'boolean') {
      throw new ConfigError(`${key} must be true or false, got ${JSON.stringify(options[key])}.`)
    }
  }
}
