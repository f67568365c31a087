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
import {
  crossTenantScope,
  currentTenant,
  type TenantId,
  tryCurrentTenant,
} from '../context/index.js'
import { ConfigError } from '../errors/index.js'
import { RLS_SETTING } from '../schema/rls-policy.js'
import { SEAL_BIND_FUNCTION, SEAL_SCHEMA } from '../schema/rls-sealed.js'
import { acquire } from '../sql/acquire.js'
import { quoteLiteral } from '../sql/quote.js'
import { asUnavailable } from '../sql/unavailable.js'
import type { TenantIdType } from '../tenants/id-types.js'
import { type ServingMap, unboundEnterStatement } from '../tenants/serving.js'
import { BindCache } from './bind-cache.js'
import { type BindingMode, bindStatement } from './binding.js'
import {
  type BindingOptions,
  type ResolvedBindingOptions,
  resolveBindingOptions,
} from './binding-options.js'
import { enterStatement, hybridCheckout } from './hybrid-binding.js'
import type { Statement } from './pipelined-query.js'
import { assertSafeRuntimeRole, inspectRuntimeRole, type RuntimeRoleFacts } from './role-check.js'
import { preparedBindName, SessionGuard } from './session-guard.js'
import { TenantConnection } from './tenant-connection.js'
import { carriesTimeouts, withTimeouts } from './unavailable.js'

/**
 * Options of the tenant-binding Kysely dialect.
 *
 * @example
 * ```ts
 * const config: TenantBindingConfig = { pool: runtimePool, adminPool: ownerPool, tenantIdType: 'bigint' }
 * ```
 */
export interface TenantBindingConfig extends BindingOptions {
  /** The runtime pool: a role that owns nothing and has no BYPASSRLS. */
  readonly pool: pg.Pool | (() => Promise<pg.Pool>)
  /** The pool for `withoutTenant` work: the owner (with BYPASSRLS) or another BYPASSRLS role. */
  readonly adminPool?: pg.Pool | undefined
  /**
   * With no tenant in context, check out a connection bound to no tenant (row
   * level security then shows no tenant rows) instead of throwing
   * `MissingTenantError`. `createTenancy` sets it: its plugin has already refused
   * every query on a tenant-aware table, so what remains touches shared tables.
   */
  readonly unboundWithoutTenant?: boolean | undefined
  /** Run the start-up role check (default true). */
  readonly checkRole?: boolean | undefined
  /** Where the unsafe-role warning goes; `console.warn` by default. */
  readonly warn?: ((message: string) => void) | undefined
  /** `pg-cursor`'s class, for `.stream()`. */
  readonly cursor?: PostgresCursorConstructor | undefined
  /**
   * Hybrid serving during an online migration: each tenant's transaction opens
   * with `rowtenancy_enter(tenant, placement)` instead of the plain bind, the
   * placement read (cached) from this serving map. `set_config` binding only.
   */
  readonly serving?: ServingMap | undefined
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
  readonly #timeouts: ResolvedBindingOptions['timeouts']
  #pool: pg.Pool | undefined
  #mode: BindingMode = 'set_config'
  #facts: RuntimeRoleFacts | undefined
  readonly #binds = new BindCache()
  /** The name the bind is prepared under (undefined: unnamed; see preparedBindName). */
  #prepareAs: string | undefined

  constructor(config: TenantBindingConfig) {
    const { tenantIdType, binding, timeouts } = resolveBindingOptions(config)
    if (config.serving && binding !== 'auto' && binding !== 'set_config') {
      throw new ConfigError(
        `hybrid serving (an online migration) needs the set_config binding, not ${binding}.`,
      )
    }
    this.#config = Object.freeze({ ...config })
    this.#type = tenantIdType
    this.#timeouts = timeouts
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
    SessionGuard.for(this.#pool) // counts checkouts from now on (see SessionGuard)
    if (binding !== 'auto') this.#mode = binding
    this.#syncPrepared()
    if (!checkRole && binding !== 'auto' && binding !== 'sealed') return
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
    if (this.#mode === 'sealed') await this.#checkSeal(runtime)
    // A set_local binding cannot carry the timeouts: say so at start-up, not at the first query.
    if (this.#mode === 'set_local') withTimeouts({ text: 'set local' }, this.#timeouts)
    if (this.#config.serving && this.#mode !== 'set_config') {
      throw new ConfigError(
        `hybrid serving (an online migration) needs the set_config binding, not ${this.#mode}: ` +
          "migrate with --online only on plain PostgreSQL, with binding 'auto' or 'set_config'.",
      )
    }
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
    // No tenant: the connection is bound to no tenant (row level security then shows no
    // tenant rows); the plugin has refused every query on tenant-aware tables already.
    const id = this.#config.unboundWithoutTenant ? tryCurrentTenant() : currentTenant()
    const serving = this.#config.serving
    if (serving && id !== undefined) {
      // Online migration: the placement decides how the query is compiled; rowtenancy_enter
      // checks it again under the tenant's fence, in the same round trip.
      const enterFor = (placement: 'schema' | 'shared') =>
        withTimeouts(enterStatement(serving.schema, this.#type, id, placement), this.#timeouts)
      const hybrid = await hybridCheckout(serving, id, enterFor)
      const enter = enterFor(hybrid.placement)
      const client = await acquire(pool, this.#timeouts.acquireMs)
      const session = SessionGuard.for(pool).checkout(client)
      return new TenantConnection(
        client,
        enter,
        this.#mode,
        this.#cursor(),
        session,
        undefined,
        hybrid,
      )
    }
    // Hybrid with no tenant: entered with none, so no legacy schema stays on the search_path.
    const unbound = serving
      ? withTimeouts(unboundEnterStatement(serving.schema), this.#timeouts)
      : unboundStatement(this.#mode)
    const bind = id === undefined ? unbound : this.#bindFor(id)
    // A full pool fails after timeouts.acquireMs; connect errors become DatabaseUnavailableError.
    const client = await acquire(pool, this.#timeouts.acquireMs)
    const session = SessionGuard.for(pool).checkout(client)
    // The no-tenant binding is never prepared under the tenant bind's name.
    const prepareAs = id === undefined ? undefined : this.#prepareAs
    return new TenantConnection(client, bind, this.#mode, this.#cursor(), session, prepareAs)
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
    return this.#binds.get(tenantId, (id) =>
      withTimeouts(bindStatement(this.#mode, this.#type, id, this.#config.sealKey), this.#timeouts),
    )
  }

  /** `prepareBind` applies to `set_config` binding only (SET LOCAL ignores it). */
  #syncPrepared(): void {
    // A bind that carries timeouts goes unnamed: the prepared name is shared by every binder of a pool.
    const named = this.#config.prepareBind !== false && !carriesTimeouts(this.#timeouts)
    this.#prepareAs = named ? preparedBindName(this.#mode) : undefined
    this.#binds.clear()
  }

  /**
   * The sealed binding at start-up: installed, the key unreadable for the runtime
   * role, and the app's sealKey the one installed (a bind is tried; it sets only
   * transaction-local settings of its own implicit transaction).
   */
  async #checkSeal(runtime: pg.Pool): Promise<void> {
    const { rows } = await runtime.query(
      `select to_regprocedure('${SEAL_BIND_FUNCTION}(text,text)') is not null as installed,
              coalesce(has_schema_privilege(to_regnamespace('${SEAL_SCHEMA}'), 'usage'), false) as readable`,
    )
    if (!rows[0]?.installed) {
      throw new ConfigError(
        "binding: 'sealed' needs the sealed binding in the database: run `rowtenancy rls enable --sealed` " +
          '(ROWTENANCY_SEAL_KEY set) as the tables owner.',
      )
    }
    if (rows[0].readable) {
      throw new ConfigError(
        `The runtime role may use schema ${SEAL_SCHEMA}, which holds the seal key: the seal means nothing. ` +
          `Revoke it: revoke all on schema ${SEAL_SCHEMA} from <runtime role>.`,
      )
    }
    const probe = bindStatement('sealed', 'text', '0', this.#config.sealKey)
    try {
      await runtime.query(probe.text, [...(probe.values ?? [])])
    } catch (err) {
      throw new ConfigError(
        'The sealKey does not match the key installed in the database (rowtenancy rls enable --sealed): ' +
          'every tenant binding would be refused. Use the same ROWTENANCY_SEAL_KEY for both.',
        { cause: err },
      )
    }
  }

  #cursor(): PostgresCursorConstructor | null {
    return this.#config.cursor ?? null
  }
}

const UNBOUND: Record<BindingMode, Statement> = {
  set_config: Object.freeze({
    text: `select set_config(${quoteLiteral(RLS_SETTING)}, '', true)`,
    values: Object.freeze([]),
  }),
  set_local: Object.freeze({ text: `set local ${RLS_SETTING} = ''`, values: Object.freeze([]) }),
  // Sealed policies read no tenant from an empty setting (rowtenancy_sealed_tenant() is null).
  sealed: Object.freeze({
    text: `select set_config(${quoteLiteral(RLS_SETTING)}, '', true)`,
    values: Object.freeze([]),
  }),
}

/** The binding of work with no tenant: the setting emptied for the transaction (no tenant rows). */
function unboundStatement(mode: BindingMode): Statement {
  return UNBOUND[mode]
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
