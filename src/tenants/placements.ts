import { ConfigError } from '../errors/index.js'
import { acquireMsOption, boundedQueryable } from '../sql/acquire.js'
import { DEFAULTS } from '../sql/defaults.js'
import type { Queryable } from '../sql/queryable.js'
import { quoteIdent, quoteLiteral, quoteQualified } from '../sql/quote.js'
import { parseTenantId, type TenantIdType } from './id-types.js'
import { LookupCache } from './lru-cache.js'

/** The placement map's table, next to `tenants`. @example `PLACEMENTS_TABLE // 'tenant_placements'` */
export const PLACEMENTS_TABLE = 'tenant_placements'

/** The name a tenant without a placement row lives in. @example `DEFAULT_DATABASE // 'default'` */
export const DEFAULT_DATABASE = 'default'

const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$/

/**
 * Checks a database name of the placement map (letters, digits, `_ . -`, at most 63).
 *
 * @example
 * ```ts
 * assertDatabaseName('eu-2') // ok
 * assertDatabaseName('') // ConfigError
 * ```
 */
export function assertDatabaseName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw new ConfigError(
      `Invalid database name ${JSON.stringify(name)} for the placement map: use 1-63 letters, digits, _ . - (e.g. "eu-2").`,
    )
  }
}

/**
 * Where the placement map lives.
 */
export interface PlacementTableOptions {
  /** The schema of `tenants`; `public` by default. */
  readonly schema?: string | undefined
  readonly idType?: TenantIdType | undefined
}

/**
 * The DDL of the placement map: `tenant_placements(tenant_id primary key references
 * tenants(id) on delete cascade, database, updated_at)`. A tenant without a row
 * lives in the default database. Idempotent.
 *
 * @example
 * ```ts
 * placementTableDdl({ idType: 'bigint' })
 * // ['create table if not exists "public"."tenant_placements" (tenant_id bigint primary key references ...)']
 * ```
 */
export function placementTableDdl(options: PlacementTableOptions = {}): string[] {
  const s = options.schema ?? DEFAULTS.schema
  const table = quoteQualified(s, PLACEMENTS_TABLE)
  return [
    `create table if not exists ${table} (
  tenant_id ${options.idType ?? DEFAULTS.tenantIdType} primary key references ${quoteQualified(s, 'tenants')} (id) on delete cascade,
  database text not null check (database ~ '^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$'),
  updated_at timestamptz not null default now()
)`,
    // Written by its owner only: default privileges may have given a runtime role DML on a
    // table made after its grants, and a tenant's code could then place another tenant.
    `do $rowtenancy$ declare r record; begin
  for r in select distinct g.grantee from information_schema.role_table_grants g
            where g.table_schema = ${quoteLiteral(s)} and g.table_name = ${quoteLiteral(PLACEMENTS_TABLE)}
              and g.privilege_type in ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')
              and g.grantee <> (select pg_catalog.pg_get_userbyid(c.relowner) from pg_catalog.pg_class c
                                 where c.oid = pg_catalog.to_regclass(${quoteLiteral(table)}))
  loop
    execute pg_catalog.format('revoke insert, update, delete, truncate on %s from %s', ${quoteLiteral(table)},
      case when r.grantee = 'PUBLIC' then 'public' else pg_catalog.quote_ident(r.grantee) end);
  end loop;
end $rowtenancy$`,
  ]
}

/**
 * Creates the placement map in the catalog database (the one holding `tenants`). Idempotent.
 *
 * @example
 * ```ts
 * await installPlacements(pool, { idType: 'bigint' })
 * ```
 */
export async function installPlacements(
  db: Queryable,
  options: PlacementTableOptions = {},
): Promise<void> {
  for (const statement of placementTableDdl(options)) await db.query(statement)
}

/**
 * Sets where a tenant lives, inside the caller's transaction when `db` is one
 * (the cut-over of a move switches it together with the tenant's status).
 * `DEFAULT_DATABASE` removes the row.
 *
 * @example
 * ```ts
 * await setPlacement(client, { idType: 'bigint' }, '7', 'eu-2')
 * ```
 */
export async function setPlacement(
  db: Queryable,
  options: PlacementTableOptions,
  tenantId: string,
  database: string,
): Promise<void> {
  assertDatabaseName(database)
  const table = quoteQualified(options.schema ?? DEFAULTS.schema, PLACEMENTS_TABLE)
  const type = options.idType ?? DEFAULTS.tenantIdType
  if (database === DEFAULT_DATABASE) {
    await db.query(`delete from ${table} where tenant_id = $1::${type}`, [tenantId])
    return
  }
  await db.query(
    `insert into ${table} (tenant_id, database) values ($1::${type}, $2)
     on conflict (tenant_id) do update set database = excluded.database, updated_at = now()`,
    [tenantId, database],
  )
}

/**
 * Options of a {@link PlacementMap}.
 *
 * @example
 * ```ts
 * new PlacementMap({ db: adminPool, idType: 'bigint', ttlMs: 1000 })
 * ```
 */
export interface PlacementMapOptions extends PlacementTableOptions {
  /** The catalog database (holding `tenants` and `tenant_placements`). */
  readonly db: Queryable
  /** How long a tenant's placement is cached; 1 s by default, 0 disables the cache. */
  readonly ttlMs?: number | undefined
  /**
   * How long a lookup waits for a connection when `db` is a pool before failing
   * with `DatabaseUnavailableError` (reason `pool-timeout`); 5000 by default, 0
   * waits forever. `createTenancy` passes its `timeouts.acquireMs`.
   */
  readonly acquireMs?: number | undefined
}

/**
 * Reads the placement map: which named database each tenant's rows live in.
 * Lookups are cached for `ttlMs` and concurrent lookups of one tenant share a
 * query. A catalog without the table places every tenant in the default database.
 *
 * @example
 * ```ts
 * const map = new PlacementMap({ db: pool })
 * await map.databaseOf('7') // 'default' or e.g. 'eu-2'
 * ```
 */
export class PlacementMap {
  readonly #db: Queryable
  readonly #type: TenantIdType
  readonly #sql: string
  readonly #cache: LookupCache<string>

  constructor(options: PlacementMapOptions) {
    this.#db = boundedQueryable(
      options.db,
      acquireMsOption(options.acquireMs, 'PlacementMap acquireMs'),
    )
    this.#type = options.idType ?? DEFAULTS.tenantIdType
    this.#cache = new LookupCache(options.ttlMs ?? 1_000)
    this.#sql =
      `select database from ${quoteIdent(options.schema ?? DEFAULTS.schema)}.${quoteIdent(PLACEMENTS_TABLE)} ` +
      `where tenant_id = $1::${this.#type}`
  }

  /**
   * The name of the database tenant `tenantId` lives in (`DEFAULT_DATABASE` when it has no row).
   *
   * @example
   * ```ts
   * await map.databaseOf(7) // 'default'
   * ```
   */
  databaseOf(tenantId: unknown): Promise<string> {
    return this.#cache.get(parseTenantId(this.#type, tenantId), (id) => this.#lookup(id))
  }

  /**
   * Forgets cached placements (one tenant, or all): the next lookup asks the database.
   *
   * @example
   * ```ts
   * map.invalidate('7')
   * ```
   */
  invalidate(tenantId?: unknown): void {
    this.#cache.forget(tenantId === undefined ? undefined : parseTenantId(this.#type, tenantId))
  }

  async #lookup(id: string): Promise<string> {
    try {
      const { rows } = await this.#db.query(this.#sql, [id])
      return (rows[0]?.database as string | undefined) ?? DEFAULT_DATABASE
    } catch (err) {
      if ((err as { code?: string }).code === '42P01') return DEFAULT_DATABASE
      throw err
    }
  }
}
