import {
  type CompiledQuery,
  createQueryId,
  type DatabaseConnection,
  type Driver,
  IdentifierNode,
  type PostgresCursorConstructor,
  type QueryCompiler,
  RawNode,
  type TransactionSettings,
} from 'kysely'
import type pg from 'pg'
import { crossTenantScope, currentTenant, type TenantId } from '../context/index.js'
import { ConfigError } from '../errors/index.js'
import { DEFAULTS } from '../sql/defaults.js'
import { asUnavailable } from '../sql/unavailable.js'
import { assertTenantIdType, type TenantIdType } from '../tenants/id-types.js'
import {
  assertBindingOption,
  type BindingMode,
  type BindingOption,
  bindStatement,
} from './binding.js'
import type { Statement } from './pipelined-query.js'
import { PreparedBinds } from './prepared-bind.js'
import { assertSafeRuntimeRole, inspectRuntimeRole, type RuntimeRoleFacts } from './role-check.js'
import { TenantConnection } from './tenant-connection.js'
import { acquire, type DatabaseTimeouts, resolveTimeouts, withTimeouts } from './unavailable.js'

const BIND_CACHE_SIZE = 1024
/** No tenant bound yet. */
const NO_ID = Symbol('no tenant id')

/**
 * Options of the tenant-binding Kysely dialect.
 *
 * @example
 * ```ts
 * const config: TenantBindingConfig = { pool: runtimePool, adminPool: ownerPool, tenantIdType: 'bigint' }
 * ```
 */
export interface TenantBindingConfig {
  /** The runtime pool: a role that owns nothing and has no BYPASSRLS. */
  readonly pool: pg.Pool | (() => Promise<pg.Pool>)
  /** The pool for `withoutTenant` work: the owner (with BYPASSRLS) or another BYPASSRLS role. */
  readonly adminPool?: pg.Pool | undefined
  /** The SQL type of tenant ids; `bigint` by default. */
  readonly tenantIdType?: TenantIdType | undefined
  /** The tenant column; `tenant_id` by default (used by the start-up role check). */
  readonly tenantColumn?: string | undefined
  /** How to bind the tenant; `auto` (the default) picks `set_local` when Citus is installed. */
  readonly binding?: BindingOption | undefined
  /** Downgrade the start-up `UnsafeRoleError` to a loud warning. */
  readonly allowUnsafeRole?: boolean | undefined
  /** Run the start-up role check (default true). */
  readonly checkRole?: boolean | undefined
  /** Where the unsafe-role warning goes; `console.warn` by default. */
  readonly warn?: ((message: string) => void) | undefined
  /** `pg-cursor`'s class, for `.stream()`. */
  readonly cursor?: PostgresCursorConstructor | undefined
  /**
   * Prepare the `set_config` bind statement once per connection (as
   * `rowtenancy_bind`) and send only Bind + Execute of it afterwards, instead of
   * parsing and planning it with every query (default false; SET LOCAL binding
   * ignores it). Use it with a direct connection, session pooling, or PgBouncer
   * >= 1.21 with `max_prepared_statements`; NOT behind a pooler that resets
   * sessions (DISCARD ALL) or swaps them per transaction: there a query fails
   * with a ConfigError that says to turn it off.
   *
   * @example
   * ```ts
   * const dialect = new TenantBindingDialect({ pool, adminPool, prepareBind: true })
   * ```
   */
  readonly prepareBind?: boolean | undefined
  /**
   * The acquire timeout (a full pool fails fast with `DatabaseUnavailableError`)
   * and the per-transaction `statement_timeout`, `lock_timeout` and
   * `idle_in_transaction_session_timeout`, sent with the binding.
   */
  readonly timeouts?: DatabaseTimeouts | undefined
}

/**
 * A Kysely driver over `pg` that runs every unit of work in a transaction bound
 * to the current tenant (see {@link TenantBindingDialect}).
 *
 * @internal
 * @example
 * ```ts
 * const driver = new TenantBindingDriver({ pool })
 * ```
 */
export class TenantBindingDriver implements Driver {
  readonly #config: TenantBindingConfig
  readonly #type: TenantIdType
  readonly #timeouts: ReturnType<typeof resolveTimeouts>
  #pool: pg.Pool | undefined
  #mode: BindingMode = 'set_config'
  #facts: RuntimeRoleFacts | undefined
  readonly #binds = new Map<string, Statement>()
  /** The last tenant bound and its statement: most checkouts repeat the previous tenant. */
  #lastId: unknown = NO_ID
  #lastBind: Statement | undefined
  /** With `prepareBind` (and `set_config` mode, see `init`): the clients with the bind prepared. */
  #prepared: PreparedBinds | undefined

  constructor(config: TenantBindingConfig) {
    const type = config.tenantIdType ?? DEFAULTS.tenantIdType
    assertTenantIdType(type)
    assertBindingOption(config.binding ?? 'auto')
    if (config.prepareBind !== undefined && typeof config.prepareBind !== 'boolean') {
      throw new ConfigError(
        `prepareBind must be true or false, got ${JSON.stringify(config.prepareBind)}.`,
      )
    }
    this.#config = Object.freeze({ ...config })
    this.#type = type
    this.#timeouts = resolveTimeouts(config.timeouts)
  }

  /** The binding mode in use (known after `init`). */
  get mode(): BindingMode {
    return this.#mode
  }

  /** What the start-up check found about the runtime role (after `init`). */
  get roleFacts(): RuntimeRoleFacts | undefined {
    return this.#facts
  }

  async init(): Promise<void> {
    const { pool, binding = 'auto', checkRole = true } = this.#config
    this.#pool = typeof pool === 'function' ? await pool() : pool
    if (binding !== 'auto') this.#mode = binding
    this.#syncPrepared()
    if (!checkRole && binding !== 'auto') return
    const runtime = this.#pool
    // Through a checkout bounded by timeouts.acquireMs: a first query under a full pool fails fast.
    const client = await acquire(runtime, this.#timeouts.acquireMs)
    let facts: RuntimeRoleFacts
    try {
      facts = await inspectRuntimeRole(client, { tenantColumn: this.#config.tenantColumn })
    } catch (err) {
      client.release(true)
      throw asUnavailable(err)
    }
    client.release()
    this.#facts = facts
    if (binding === 'auto') this.#mode = facts.citus ? 'set_local' : 'set_config'
    this.#syncPrepared()
    // A set_local binding cannot carry the timeouts: say so at start-up, not at the first query.
    withTimeouts(bindStatement(this.#mode, 'text', 'x'), this.#timeouts)
    if (checkRole) {
      assertSafeRuntimeRole(facts, {
        allowUnsafeRole: this.#config.allowUnsafeRole,
        warn: this.#config.warn,
      })
    }
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    const pool = this.#pool
    if (!pool) {
      throw new Error(
        'This Kysely instance has been destroyed (db.destroy() or tenancy.destroy()); create a new one to run more queries.',
      )
    }
    if (crossTenantScope()) {
      const admin = this.#config.adminPool
      if (!admin) {
        throw new ConfigError(
          'withoutTenant(...) work needs an adminPool: a pool of a role that may read every tenant ' +
            '(the owner with BYPASSRLS). Pass adminPool to createTenancy / the dialect.',
        )
      }
      const client = await acquire(admin, this.#timeouts.acquireMs)
      return new TenantConnection(client, undefined, this.#mode, this.#cursor())
    }
    // Fails closed before any connection is taken: MissingTenantError, InvalidTenantIdError.
    const bind = this.#bindFor(currentTenant())
    // A full pool fails after timeouts.acquireMs; connect errors become DatabaseUnavailableError.
    const client = await acquire(pool, this.#timeouts.acquireMs)
    return new TenantConnection(client, bind, this.#mode, this.#cursor(), this.#prepared)
  }

  async beginTransaction(
    connection: DatabaseConnection,
    settings: TransactionSettings,
  ): Promise<void> {
    ;(connection as TenantConnection).begin(settings)
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    await (connection as TenantConnection).commit()
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    await (connection as TenantConnection).rollback()
  }

  async savepoint(
    connection: DatabaseConnection,
    name: string,
    compileQuery: QueryCompiler['compileQuery'],
  ): Promise<void> {
    await connection.executeQuery(savepointQuery('savepoint', name, compileQuery))
  }

  async rollbackToSavepoint(
    connection: DatabaseConnection,
    name: string,
    compileQuery: QueryCompiler['compileQuery'],
  ): Promise<void> {
    await connection.executeQuery(savepointQuery('rollback to', name, compileQuery))
  }

  async releaseSavepoint(
    connection: DatabaseConnection,
    name: string,
    compileQuery: QueryCompiler['compileQuery'],
  ): Promise<void> {
    await connection.executeQuery(savepointQuery('release', name, compileQuery))
  }

  async releaseConnection(connection: DatabaseConnection): Promise<void> {
    await (connection as TenantConnection).release()
  }

  async destroy(): Promise<void> {
    const pool = this.#pool
    this.#pool = undefined
    // Like Kysely's PostgresDriver: destroying the Kysely instance ends the runtime pool.
    if (pool) await pool.end()
  }

  /** The binding statement of a tenant; validated once, then served from a small cache. */
  #bindFor(tenantId: TenantId): Statement {
    if (tenantId === this.#lastId && this.#lastBind) return this.#lastBind
    const key = typeof tenantId === 'string' ? tenantId : `${typeof tenantId}:${tenantId}`
    let bind = this.#binds.get(key)
    if (!bind) {
      bind = withTimeouts(bindStatement(this.#mode, this.#type, tenantId), this.#timeouts)
      if (this.#prepared) bind = PreparedBinds.named(bind)
      if (this.#binds.size >= BIND_CACHE_SIZE) this.#binds.clear()
      this.#binds.set(key, bind)
    }
    this.#lastId = tenantId
    this.#lastBind = bind
    return bind
  }

  /** `prepareBind` applies to `set_config` binding only (SET LOCAL ignores it). */
  #syncPrepared(): void {
    const on = this.#config.prepareBind === true && this.#mode === 'set_config'
    this.#prepared = on ? (this.#prepared ?? new PreparedBinds()) : undefined
    this.#binds.clear()
    this.#lastId = NO_ID
    this.#lastBind = undefined
  }

  #cursor(): PostgresCursorConstructor | null {
    return this.#config.cursor ?? null
  }
}

function savepointQuery(
  command: 'savepoint' | 'rollback to' | 'release',
  name: string,
  compileQuery: QueryCompiler['compileQuery'],
): CompiledQuery {
  // The node Kysely's PostgresDriver builds: the name goes through the compiler's identifier quoting.
  const node = RawNode.createWithChildren([
    RawNode.createWithSql(`${command} `),
    IdentifierNode.create(name),
  ])
  return compileQuery(node, createQueryId())
}
