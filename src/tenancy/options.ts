import type { KyselyPlugin, PostgresPool } from 'kysely'
import type { AuditLogger } from '../audit/index.js'
import {
  BINDING_OPTION_NAMES,
  type BindingOptions,
  type ResolvedBindingOptions,
  resolveBindingOptions,
} from '../db/binding-options.js'
import { ConfigError } from '../errors/index.js'
import { type TableInput, TableRegistry } from '../schema/table-registry.js'
import type { Queryable } from '../sql/queryable.js'
import type { TenantIdType } from '../tenants/id-types.js'
import { ServingMap } from '../tenants/serving.js'
import { type PlacementOptions, type ResolvedPlacement, resolvePlacement } from './placement.js'

/**
 * A connection pool rowtenancy can use: Kysely's `PostgresPool` that can also
 * run a plain query. A `pg.Pool` fits.
 *
 * @example
 * ```ts
 * const pool: TenancyPool = new pg.Pool({ connectionString: process.env.DATABASE_URL })
 * ```
 */
export type TenancyPool = PostgresPool & Queryable

/**
 * Options of `createTenancy`.
 *
 * @example
 * ```ts
 * const options: TenancyOptions = {
 *   pool,
 *   tables: ['accounts', 'transactions'],
 *   audit: { logger: (e) => console.info(e.reason), actor: () => currentUser()?.email },
 * }
 * ```
 */
export interface TenancyOptions extends BindingOptions {
  /** The pool scoped queries run on (the application role). */
  readonly pool: TenancyPool
  /** The tenant-aware tables, by database name; every other table is shared. */
  readonly tables: readonly TableInput[]
  /** The pool `allObjects` and the audit log use; `pool` by default. */
  readonly adminPool?: TenancyPool | undefined
  /** Extra Kysely plugins (e.g. `CamelCasePlugin`); they run before the TenantPlugin. */
  readonly plugins?: readonly KyselyPlugin[] | undefined
  /** Audit log settings for cross-tenant work. */
  readonly audit?: TenancyAuditOptions | undefined
  /** Tenants in more than one database: the other databases by name, routed by the placement map (see `tenant_placements`). */
  readonly placement?: PlacementOptions | undefined
  /**
   * Serve tenants from wherever an online migration (`migrate-to-row-tenancy
   * --online`) has them: a tenant not cut over yet from its legacy schema (no
   * tenant filters; `search_path` set inside each transaction), a migrated one
   * from the shared tables as usual. `true`, or `{ schema, ttlMs }`: the schema of
   * the serving map (the shared tables' schema, `public` by default) and how long
   * a placement is cached (1 s). See docs/migration.md, "Online migration".
   */
  readonly hybrid?: boolean | HybridOptions | undefined
}

/**
 * The `hybrid` option of `createTenancy` as an object.
 *
 * @example
 * ```ts
 * createTenancy({ pool, tables, hybrid: { schema: 'public', ttlMs: 1000 } })
 * ```
 */
export interface HybridOptions {
  /** The schema of `rowtenancy_serving` (the shared tables' schema); `public` by default. */
  readonly schema?: string | undefined
  /** How long a tenant's placement is cached; 1 s by default. */
  readonly ttlMs?: number | undefined
}

/**
 * Audit log settings of a tenancy.
 */
export interface TenancyAuditOptions {
  /** The audit table, `audit_log` by default (`schema.table` allowed); `false` to only call `logger`. */
  readonly table?: string | false | undefined
  /** Called with every audit event. */
  readonly logger?: AuditLogger | undefined
  /** The actor recorded when a call names none: a name, or a function asked each time. */
  readonly actor?: string | (() => string | undefined) | undefined
  /**
   * Where audit records are written: a pool used for nothing else, so no user SQL
   * (a raw `rollback`, a temporary table) can touch the connection. By default a
   * pool of two connections with `adminPool`'s settings, ended by `destroy()`.
   */
  readonly pool?: Queryable | undefined
}

/**
 * The options after validation and defaults, as `tenancy.options` shows them.
 *
 * @example
 * ```ts
 * tenancy.options.tenantIdType // 'bigint'
 * ```
 */
export interface ResolvedTenancyOptions extends ResolvedBindingOptions {
  readonly pool: TenancyPool
  readonly adminPool: TenancyPool
  readonly plugins: readonly KyselyPlugin[]
  /** With the `placement` option: the databases and the routing pool (which `pool` then is). */
  readonly placement: ResolvedPlacement | undefined
  /** With the `hybrid` option: the serving map of the online migration. */
  readonly serving: ServingMap | undefined
  readonly audit: Readonly<{
    table: string | false
    logger: AuditLogger | undefined
    actor: string | (() => string | undefined) | undefined
    pool: Queryable | undefined
  }>
}

const KNOWN = new Set([
  'pool',
  'tables',
  'adminPool',
  'plugins',
  'audit',
  'placement',
  'hybrid',
  ...BINDING_OPTION_NAMES,
])

/**
 * Validates `createTenancy` options (unknown keys, missing pool, bad types) and
 * fills in defaults.
 *
 * @internal
 */
export function resolveTenancyOptions(options: TenancyOptions): {
  resolved: ResolvedTenancyOptions
  registry: TableRegistry
} {
  if (options === null || typeof options !== 'object') {
    throw new ConfigError('createTenancy(options) needs an options object: { pool, tables }.')
  }
  for (const key of Object.keys(options)) {
    if (!KNOWN.has(key)) {
      throw new ConfigError(
        `Unknown createTenancy option ${JSON.stringify(key)}; known options: ${[...KNOWN].join(', ')}.`,
      )
    }
  }
  checkPool(options.pool, 'pool')
  if (options.adminPool !== undefined) checkPool(options.adminPool, 'adminPool')
  const bindingOptions = resolveBindingOptions(options)
  const { tenantIdType, tenantColumn } = bindingOptions
  const registry = TableRegistry.from(options.tables, { tenantColumn })
  const plugins = options.plugins ?? []
  if (!Array.isArray(plugins) || plugins.some((p) => typeof p?.transformQuery !== 'function')) {
    throw new ConfigError(
      'plugins must be an array of Kysely plugins, e.g. [new CamelCasePlugin()].',
    )
  }
  const audit = options.audit ?? {}
  if (audit.logger !== undefined && typeof audit.logger !== 'function') {
    throw new ConfigError('audit.logger must be a function (event) => void.')
  }
  if (audit.pool !== undefined && typeof audit.pool?.query !== 'function') {
    throw new ConfigError('audit.pool must be a pg.Pool (or anything with query(text, values)).')
  }
  const adminPool = options.adminPool ?? options.pool
  const placement =
    options.placement === undefined
      ? undefined
      : resolvePlacement(
          { pool: options.pool, adminPool },
          options.placement,
          tenantIdType,
          bindingOptions.timeouts.acquireMs,
        )
  const serving = resolveHybrid(
    options.hybrid,
    adminPool,
    tenantIdType,
    bindingOptions.timeouts.acquireMs,
  )
  if (serving && placement) {
    throw new ConfigError(
      'hybrid (an online migration) and placement (several databases) cannot be combined: migrate each database first.',
    )
  }
  const resolved: ResolvedTenancyOptions = Object.freeze({
    pool: placement ? (placement.routing as unknown as TenancyPool) : options.pool,
    adminPool,
    placement,
    ...bindingOptions,
    plugins: Object.freeze([...plugins]),
    serving,
    audit: Object.freeze({
      table: audit.table ?? 'audit_log',
      logger: audit.logger,
      actor: audit.actor,
      pool: audit.pool,
    }),
  })
  return { resolved, registry }
}

function resolveHybrid(
  hybrid: TenancyOptions['hybrid'],
  adminPool: TenancyPool,
  idType: TenantIdType,
  acquireMs: number,
): ServingMap | undefined {
  if (hybrid === undefined || hybrid === false) return undefined
  const o: HybridOptions = hybrid === true ? {} : hybrid
  if (o === null || typeof o !== 'object') {
    throw new ConfigError('hybrid must be true, false or { schema?, ttlMs? }.')
  }
  for (const key of Object.keys(o)) {
    if (key !== 'schema' && key !== 'ttlMs') {
      throw new ConfigError(`Unknown hybrid option ${JSON.stringify(key)}; known: schema, ttlMs.`)
    }
  }
  if (o.schema !== undefined && (typeof o.schema !== 'string' || o.schema.length === 0)) {
    throw new ConfigError('hybrid.schema must be a schema name, e.g. "public".')
  }
  const ttl = o.ttlMs
  if (ttl !== undefined && (typeof ttl !== 'number' || !Number.isFinite(ttl) || ttl < 0)) {
    throw new ConfigError(
      `hybrid.ttlMs must be a number of milliseconds >= 0, got ${JSON.stringify(ttl)}.`,
    )
  }
  return new ServingMap({ db: adminPool, idType, schema: o.schema, ttlMs: ttl, acquireMs })
}

function checkPool(pool: unknown, name: string): void {
  const p = pool as Partial<TenancyPool> | null | undefined
  if (!p || typeof p.connect !== 'function' || typeof p.query !== 'function') {
    throw new ConfigError(
      `createTenancy needs ${name}: a pg.Pool (new pg.Pool({ connectionString })), got ${p === null ? 'null' : typeof p}.`,
    )
  }
}
