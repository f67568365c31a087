import {
  type DatabaseIntrospector,
  type Dialect,
  type DialectAdapter,
  type Driver,
  type Kysely,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type QueryCompiler,
} from 'kysely'
import { type TenantBindingConfig, TenantBindingDriver } from './tenant-driver.js'

/**
 * A Kysely dialect for PostgreSQL (over `pg`) that binds the current tenant to
 * every unit of work, so Row Level Security enforces the boundary on any SQL:
 *
 * - a lone query runs as `select pg_catalog.set_config('rowtenancy.tenant_id', $1, true)`
 *   plus the query, sent together in ONE round trip (one implicit transaction);
 * - `db.transaction()` sends `BEGIN` and the binding together with its first
 *   statement;
 * - the tenant is read from `currentTenant()` when the work starts:
 *   `MissingTenantError` before a connection is taken when there is none;
 * - inside `withoutTenant(reason, fn)` the work goes to `adminPool`, unbound;
 * - never a session-level `SET`: a released connection carries nothing.
 *
 * At start-up it refuses (`UnsafeRoleError`) a runtime role that is a superuser,
 * has BYPASSRLS or owns tenant-aware tables, and picks `SET LOCAL` binding when
 * Citus is installed.
 *
 * @example
 * ```ts
 * const db = new Kysely<DB>({ dialect: new TenantBindingDialect({ pool: runtimePool, adminPool }) })
 * await runWithTenant(7, () => sql`select * from accounts`.execute(db)) // tenant 7's rows only
 * ```
 */
export class TenantBindingDialect implements Dialect {
  readonly #config: TenantBindingConfig

  constructor(config: TenantBindingConfig) {
    this.#config = Object.freeze({ ...config })
  }

  /**
   * The driver Kysely runs every query through: it binds the current tenant to
   * each unit of work (called once by Kysely).
   *
   * @example
   * ```ts
   * const driver = new TenantBindingDialect({ pool }).createDriver() // a TenantBindingDriver
   * await driver.init() // checks the runtime role, picks the binding mode
   * ```
   */
  createDriver(): Driver {
    return new TenantBindingDriver(this.#config)
  }

  /**
   * PostgreSQL's query compiler (`$1` parameters, `"quoted"` identifiers).
   *
   * @example
   * ```ts
   * new TenantBindingDialect({ pool }).createQueryCompiler() // a PostgresQueryCompiler
   * ```
   */
  createQueryCompiler(): QueryCompiler {
    return new PostgresQueryCompiler()
  }

  /**
   * PostgreSQL's dialect adapter (RETURNING, transactional DDL, advisory-lock migrations).
   *
   * @example
   * ```ts
   * new TenantBindingDialect({ pool }).createAdapter().supportsReturning // true
   * ```
   */
  createAdapter(): DialectAdapter {
    return new PostgresAdapter()
  }

  /**
   * PostgreSQL's introspector, for `db.introspection`. Its catalog queries run
   * through this dialect too: under a tenant, or in `withoutTenant` (with an `adminPool`).
   *
   * @example
   * ```ts
   * const tables = await withoutTenant('list tables', () => db.introspection.getTables())
   * ```
   */
  createIntrospector(db: Kysely<any>): DatabaseIntrospector {
    return new PostgresIntrospector(db)
  }
}
