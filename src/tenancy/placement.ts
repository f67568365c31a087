import type { PostgresPoolClient } from 'kysely'
import { tryCurrentTenant } from '../context/index.js'
import { ConfigError } from '../errors/index.js'
import type { TenantIdType } from '../tenants/id-types.js'
import { assertDatabaseName, DEFAULT_DATABASE, PlacementMap } from '../tenants/placements.js'
import type { TenancyPool } from './options.js'

/**
 * One database of a multi-database tenancy: its runtime pool and, for
 * `allObjects` on it, an admin pool.
 */
export interface TenancyDatabase {
  readonly pool: TenancyPool
  readonly adminPool?: TenancyPool | undefined
}

/**
 * The placement option of `createTenancy`: more databases than the default one,
 * by name, and how the placement map is read.
 *
 * @example
 * ```ts
 * createTenancy({ pool, tables, placement: { databases: { 'eu-2': { pool: euPool } } } })
 * ```
 */
export interface PlacementOptions {
  /** The other databases, by the name the placement map uses. */
  readonly databases: Readonly<Record<string, TenancyPool | TenancyDatabase>>
  /** The name of the database `pool` connects to; `default` by default. */
  readonly defaultDatabase?: string | undefined
  /** How long a placement is cached; 1 s by default. */
  readonly ttlMs?: number | undefined
  /** The schema of `tenants` and `tenant_placements` in the default database; `public` by default. */
  readonly schema?: string | undefined
}

/**
 * The placement option after validation, as `tenancy.options.placement` shows it.
 *
 * @example
 * ```ts
 * tenancy.options.placement?.routing.databases // ['default', 'eu-2']
 * ```
 */
export interface ResolvedPlacement {
  readonly defaultName: string
  readonly databases: ReadonlyMap<string, Required<TenancyDatabase>>
  readonly routing: RoutingPool
}

/**
 * A pool that routes each checkout to the pool of the database the tenant in
 * context lives in (the placement map says which); with no tenant in context,
 * to the default database. It is what `tenancy.options.pool` is when
 * `createTenancy` has a `placement` option, so `tenancy.kysely()`,
 * `withTenantClient(tenancy.options.pool, ...)` and anything built on that pool
 * follow the tenant without app changes.
 *
 * @example
 * ```ts
 * const pool = tenancy.options.pool as RoutingPool
 * await runWithTenant('7', () => pool.query('select count(*) from accounts')) // on tenant 7's database
 * ```
 */
export class RoutingPool {
  readonly #pools: ReadonlyMap<string, TenancyPool>
  readonly #default: string
  readonly #map: PlacementMap

  constructor(pools: ReadonlyMap<string, TenancyPool>, defaultName: string, map: PlacementMap) {
    this.#pools = pools
    this.#default = defaultName
    this.#map = map
  }

  /** The names of every database this pool routes to. @example `pool.databases // ['default', 'eu-2']` */
  get databases(): string[] {
    return [...this.#pools.keys()]
  }

  /** The placement map it reads. @example `pool.placement.invalidate('7')` */
  get placement(): PlacementMap {
    return this.#map
  }

  /**
   * The pool of the database tenant `tenantId` lives in; a `ConfigError` when the
   * placement map names a database this tenancy has no pool for (fail closed).
   *
   * @example
   * ```ts
   * const p = await routing.poolFor('7')
   * ```
   */
  async poolFor(tenantId: unknown): Promise<TenancyPool> {
    const placed = await this.#map.databaseOf(tenantId)
    const name = placed === DEFAULT_DATABASE ? this.#default : placed
    const pool = this.#pools.get(name)
    if (!pool) {
      throw new ConfigError(
        `Tenant ${String(tenantId)} lives in database ${JSON.stringify(name)}, but createTenancy has no pool ` +
          `for it (known: ${this.databases.join(', ')}). Add it to placement.databases.`,
      )
    }
    return pool
  }

  /** The pool for the tenant in context, or the default database's. @internal */
  #current(): Promise<TenancyPool> | TenancyPool {
    const id = tryCurrentTenant()
    return id === undefined ? this.#pools.get(this.#default)! : this.poolFor(id)
  }

  /** A client of the tenant's database. @example `const client = await pool.connect()` */
  async connect(): Promise<PostgresPoolClient & { release(err?: boolean | Error): void }> {
    const pool = await this.#current()
    return (await pool.connect()) as PostgresPoolClient & { release(err?: boolean | Error): void }
  }

  /** A client of tenant `tenantId`'s database, whatever the context. @example `await pool.connectFor('7')` */
  async connectFor(
    tenantId: unknown,
  ): Promise<PostgresPoolClient & { release(err?: boolean | Error): void }> {
    return (await (await this.poolFor(tenantId)).connect()) as PostgresPoolClient & {
      release(err?: boolean | Error): void
    }
  }

  /** One statement on the tenant's database (the default one with no tenant in context). @example `await pool.query('select 1')` */
  async query(text: string, values?: unknown[]): Promise<{ rows: any[]; rowCount: number | null }> {
    return (await this.#current()).query(text, values)
  }

  /**
   * Listens to an event of every underlying pool (`acquire`, `error`, ...), as
   * `pg.Pool#on` does for one.
   *
   * @example
   * ```ts
   * routing.on('error', (err) => log(err))
   * ```
   */
  on(event: string, listener: (...args: any[]) => void): this {
    for (const pool of new Set(this.#pools.values())) {
      ;(pool as unknown as { on(e: string, l: (...args: any[]) => void): unknown }).on(
        event,
        listener,
      )
    }
    return this
  }

  /** Ends every pool. @example `await pool.end()` */
  async end(): Promise<void> {
    await Promise.all([...new Set(this.#pools.values())].map((p) => p.end()))
  }
}

/**
 * Normalises the placement option: every name checked, `{ pool, adminPool }` per database.
 *
 * @internal
 */
export function resolvePlacement(
  defaultPools: { pool: TenancyPool; adminPool: TenancyPool },
  options: PlacementOptions,
  idType: TenantIdType,
  acquireMs: number,
): ResolvedPlacement {
  if (options === null || typeof options !== 'object' || typeof options.databases !== 'object') {
    throw new ConfigError('placement needs { databases: { name: pool } }.')
  }
  const defaultName = options.defaultDatabase ?? DEFAULT_DATABASE
  assertDatabaseName(defaultName)
  const databases = new Map<string, Required<TenancyDatabase>>([[defaultName, defaultPools]])
  for (const [name, value] of Object.entries(options.databases)) {
    assertDatabaseName(name)
    if (databases.has(name)) {
      throw new ConfigError(
        `placement.databases names ${JSON.stringify(name)}, the default database's name.`,
      )
    }
    const db =
      'pool' in (value as object) ? (value as TenancyDatabase) : { pool: value as TenancyPool }
    if (typeof db.pool?.connect !== 'function' || typeof db.pool?.query !== 'function') {
      throw new ConfigError(`placement.databases.${name} must be a pg.Pool or { pool, adminPool }.`)
    }
    databases.set(name, { pool: db.pool, adminPool: db.adminPool ?? db.pool })
  }
  const map = new PlacementMap({
    db: defaultPools.adminPool,
    idType,
    schema: options.schema,
    ttlMs: options.ttlMs,
    acquireMs,
  })
  const pools = new Map([...databases].map(([name, d]) => [name, d.pool]))
  return { defaultName, databases, routing: new RoutingPool(pools, defaultName, map) }
}

/**
 * The admin pool `allObjects` uses for `database` (the default database when
 * left out), and the note its audit reason carries with `placement`.
 *
 * @internal
 */
export function placedAdmin(
  resolved: { adminPool: TenancyPool; placement: ResolvedPlacement | undefined },
  database: string | undefined,
): { adminPool: TenancyPool; note: string } {
  const placement = resolved.placement
  if (!placement) {
    if (database !== undefined && database !== DEFAULT_DATABASE) {
      throw new ConfigError(
        `allObjects({ database: ${JSON.stringify(database)} }): this tenancy has one database; add the placement option to reach others.`,
      )
    }
    return { adminPool: resolved.adminPool, note: '' }
  }
  const name = database ?? placement.defaultName
  const db = placement.databases.get(name)
  if (!db) {
    throw new ConfigError(
      `allObjects({ database: ${JSON.stringify(name)} }): no such database (known: ${[...placement.databases.keys()].join(', ')}).`,
    )
  }
  return { adminPool: db.adminPool, note: ` [database ${name}; other databases not covered]` }
}
