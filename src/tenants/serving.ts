import { acquireMsOption, boundedQueryable } from '../sql/acquire.js'
import { DEFAULTS } from '../sql/defaults.js'
import type { Queryable } from '../sql/queryable.js'
import { quoteIdent, quoteLiteral, quoteQualified } from '../sql/quote.js'
import { parseTenantId, type TenantIdType } from './id-types.js'
import { LookupCache } from './lru-cache.js'

/**
 * The serving map of an online migration: where each legacy tenant is served
 * from while `migrate-to-row-tenancy --online` runs (`schema`: its legacy
 * schema; `shared`: the shared tables). A tenant without a row is served from
 * the shared tables. @example `SERVING_TABLE // 'rowtenancy_serving'`
 */
export const SERVING_TABLE = 'rowtenancy_serving'

/** The function every hybrid transaction starts with. @example `ENTER_FUNCTION // 'rowtenancy_enter'` */
export const ENTER_FUNCTION = 'rowtenancy_enter'

/**
 * The setting `rowtenancy_enter` binds, transaction-local, to the legacy schema
 * of a schema-placed tenant ('' otherwise); the legacy tables' row level
 * security policy compares with it. @example `LEGACY_SETTING // 'rowtenancy.legacy_schema'`
 */
export const LEGACY_SETTING = 'rowtenancy.legacy_schema'

/** Where a tenant is served from during an online migration. @example `const p: Placement = 'schema'` */
export type Placement = 'schema' | 'shared'

/** SQLSTATE raised by `rowtenancy_enter` when the fence outlasted the tenant's `fence_ms`. @internal */
export const FENCED_SQLSTATE = 'RTF01'
/** SQLSTATE raised by `rowtenancy_enter` when the placement differs from the one the client compiled for. @internal */
export const MOVED_SQLSTATE = 'RTP01'

/** How long a fenced request waits by default before its retryable refusal. @example `DEFAULT_FENCE_MS // 5000` */
export const DEFAULT_FENCE_MS = 5_000

/**
 * The advisory lock key of a tenant's write fence, as SQL over a text
 * expression: hybrid transactions hold it shared, the cut-over exclusive.
 *
 * @example
 * ```ts
 * fenceKeySql('$1') // "pg_catalog.hashtext('rowtenancy.online'), pg_catalog.hashtext($1)"
 * ```
 * @internal
 */
export function fenceKeySql(tenantText: string): string {
  return `pg_catalog.hashtext('rowtenancy.online'), pg_catalog.hashtext(${tenantText})`
}

/**
 * The DDL of the serving map and of `rowtenancy_enter(tenant, expected)`, in
 * `schema` (the schema of the shared tables). Idempotent.
 *
 * `rowtenancy_enter` takes the tenant's fence (a shared transaction advisory
 * lock, waiting at most the row's `fence_ms`, then SQLSTATE `RTF01`), reads the
 * tenant's placement after the lock, refuses with `RTP01` when `expected` is
 * given and differs, and binds the transaction: on `schema`, `search_path`
 * starts with the legacy schema and `rowtenancy.tenant_id` is empty (row level
 * security shows no shared rows); on `shared`, `rowtenancy.tenant_id` is the
 * tenant, as the plain binding does. Both settings are transaction-local.
 *
 * @example
 * ```ts
 * for (const s of servingDdl('public', 'bigint')) await admin.query(s)
 * ```
 */
export function servingDdl(schema: string, idType: TenantIdType): string[] {
  const table = quoteQualified(schema, SERVING_TABLE)
  const fn = quoteQualified(schema, ENTER_FUNCTION)
  const check = quoteQualified(schema, `${ENTER_FUNCTION}_check`)
  const key = fenceKeySql('p_tenant')
  return [
    `create table if not exists ${table} (
  tenant_id ${idType} primary key,
  schema_name text not null,
  placement text not null check (placement in ('schema', 'shared')),
  fence_ms integer not null default ${DEFAULT_FENCE_MS} check (fence_ms between 1 and 600000),
  updated_at timestamptz not null default now()
)`,
    `create index if not exists ${quoteIdent(`${SERVING_TABLE}_schema`)} on ${table} (schema_name)`,
    // The checks run as the owner (they read and lock the serving row) with a pinned
    // search_path, so a caller's objects can never run with the owner's rights; the
    // binding itself is set by the caller's own function (a SET clause would undo it).
    `create or replace function ${check}(p_tenant text, p_expected text, p_path text,
  out o_placement text, out o_path text)
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp as $rt$
declare
  v_schema text;
  v_fence integer;
  v_prev text;
  v_item text;
  v_name text;
  v_dropped boolean := false;
begin
  select s.schema_name, s.fence_ms into v_schema, v_fence
    from ${table} s where s.tenant_id = p_tenant::${idType};
  if v_schema is not null then
    if not pg_catalog.pg_try_advisory_xact_lock_shared(${key}) then
      v_prev := pg_catalog.current_setting('lock_timeout');
      perform pg_catalog.set_config('lock_timeout', v_fence::text, true);
      begin
        perform pg_catalog.pg_advisory_xact_lock_shared(${key});
      exception when lock_not_available then
        raise exception using errcode = ${quoteLiteral(FENCED_SQLSTATE)},
          message = 'tenant ' || p_tenant || ' is fenced by an online migration cut-over; retry';
      end;
      perform pg_catalog.set_config('lock_timeout', v_prev, true);
    end if;
    -- read again under the fence: a cut-over that committed before it is seen
    select s.schema_name, s.placement into v_schema, o_placement
      from ${table} s where s.tenant_id = p_tenant::${idType};
    if pg_catalog.current_setting('transaction_isolation') <> 'read committed' then
      -- one snapshot for the whole transaction: a flip after it raises a serialization failure
      perform 1 from ${table} s where s.tenant_id = p_tenant::${idType} for share;
    end if;
  end if;
  o_placement := coalesce(o_placement, 'shared');
  if p_expected is not null and p_expected <> o_placement then
    raise exception using errcode = ${quoteLiteral(MOVED_SQLSTATE)},
      message = 'tenant ' || p_tenant || ' is served from ' || o_placement || ', not ' || p_expected || '; retry';
  end if;
  -- The legacy tables' policy shows a schema's rows only to a transaction bound to it.
  -- Transaction-local; the function's SET clause restores search_path only.
  perform pg_catalog.set_config(${quoteLiteral(LEGACY_SETTING)},
    case when o_placement = 'schema' then v_schema else '' end, true);
  -- No other tenant's legacy schema (nor "$user", which may name one) stays on the search_path:
  -- an unqualified name missing from the tenant's own schema must not reach another tenant's.
  o_path := '';
  for v_item in
    select m[1] from pg_catalog.regexp_matches(p_path, '\\s*("(?:[^"]|"")*"|[^,]*[^,\\s])\\s*(?:,|$)', 'g') as m
  loop
    if pg_catalog.left(v_item, 1) = '"' then
      v_name := pg_catalog.replace(pg_catalog.substr(v_item, 2, pg_catalog.length(v_item) - 2), '""', '"');
    else
      v_name := pg_catalog.lower(v_item);
    end if;
    if v_name = '$user' or v_name = v_schema
       or exists (select 1 from ${table} s where s.schema_name = v_name) then
      v_dropped := true;
    else
      o_path := o_path || case when o_path = '' then '' else ', ' end || pg_catalog.quote_ident(v_name);
    end if;
  end loop;
  if o_placement = 'schema' then
    o_path := pg_catalog.quote_ident(v_schema) || case when o_path = '' then '' else ', ' || o_path end;
  elsif not v_dropped then
    o_path := null;
  end if;
end
$rt$`,
    `create or replace function ${fn}(p_tenant text, p_expected text) returns void
language plpgsql volatile security invoker as $rt$
declare
  v record;
begin
  select c.o_placement, c.o_path into v
    from ${check}(p_tenant, p_expected, pg_catalog.current_setting('search_path')) c;
  if v.o_path is not null then
    perform pg_catalog.set_config('search_path', v.o_path, true);
  end if;
  if v.o_placement = 'schema' then
    perform pg_catalog.set_config('rowtenancy.tenant_id', '', true);
  else
    -- no tenant (an unbound hybrid statement): no tenant's rows
    perform pg_catalog.set_config('rowtenancy.tenant_id', coalesce(p_tenant, ''), true);
  end if;
end
$rt$`,
  ]
}

/**
 * The statement that opens a hybrid transaction for `tenantId`:
 * `select "<schema>".rowtenancy_enter($1, $2)`, `$2` the placement the caller
 * compiled for (`null`: raw SQL that works in either placement).
 *
 * @example
 * ```ts
 * enterSql('public') // 'select "public"."rowtenancy_enter"($1, $2)'
 * ```
 * @internal
 */
export function enterSql(schema: string): string {
  return `select ${quoteQualified(schema, ENTER_FUNCTION)}($1, $2)`
}

/**
 * The statement that opens a hybrid statement with no tenant in context:
 * `rowtenancy_enter(null, null)` binds no tenant and no legacy schema, and takes
 * every legacy schema and `"$user"` off the search_path.
 *
 * @example
 * ```ts
 * unboundEnterStatement('public') // { text: 'select "public"."rowtenancy_enter"($1, $2)', values: [null, null] }
 * ```
 * @internal
 */
export function unboundEnterStatement(schema: string): {
  readonly text: string
  readonly values: readonly unknown[]
} {
  return Object.freeze({ text: enterSql(schema), values: Object.freeze([null, null]) })
}

/**
 * Options of a {@link ServingMap}.
 */
export interface ServingMapOptions {
  /** A pool that may read the serving map (the tenancy's admin pool). */
  readonly db: Queryable
  readonly idType?: TenantIdType | undefined
  /** The schema of the serving map (the shared tables' schema); `public` by default. */
  readonly schema?: string | undefined
  /** How long a placement is cached; 1 s by default. */
  readonly ttlMs?: number | undefined
  /**
   * How long a lookup waits for a connection when `db` is a pool before failing
   * with `DatabaseUnavailableError` (reason `pool-timeout`); 5000 by default, 0
   * waits forever. `createTenancy` passes its `timeouts.acquireMs`.
   */
  readonly acquireMs?: number | undefined
}

/**
 * A cached reader of the serving map. The cache only decides how a query is
 * compiled: `rowtenancy_enter` checks the placement again under the tenant's
 * fence, in the same round trip, and refuses a stale one.
 *
 * @example
 * ```ts
 * const map = new ServingMap({ db: adminPool })
 * await map.placementOf('7') // 'schema' | 'shared'
 * ```
 */
export class ServingMap {
  readonly #db: Queryable
  readonly #type: TenantIdType
  readonly #sql: string
  /** The schema the serving map and `rowtenancy_enter` live in. */
  readonly schema: string
  readonly #cache: LookupCache<Placement>

  constructor(options: ServingMapOptions) {
    this.#db = boundedQueryable(
      options.db,
      acquireMsOption(options.acquireMs, 'ServingMap acquireMs'),
    )
    this.#type = options.idType ?? DEFAULTS.tenantIdType
    this.#cache = new LookupCache(options.ttlMs ?? 1_000)
    this.schema = options.schema ?? DEFAULTS.schema
    this.#sql =
      `select placement from ${quoteIdent(this.schema)}.${quoteIdent(SERVING_TABLE)} ` +
      `where tenant_id = $1::${this.#type}`
  }

  /**
   * Where tenant `tenantId` is served from now (cached for `ttlMs`).
   *
   * @example
   * ```ts
   * await map.placementOf(7) // 'shared'
   * ```
   */
  placementOf(tenantId: unknown): Promise<Placement> {
    return this.#cache.get(parseTenantId(this.#type, tenantId), (id) => this.#lookup(id))
  }

  /**
   * Forgets a cached placement (one tenant, or all).
   *
   * @example
   * ```ts
   * map.invalidate('7')
   * ```
   */
  invalidate(tenantId?: unknown): void {
    this.#cache.forget(tenantId === undefined ? undefined : parseTenantId(this.#type, tenantId))
  }

  async #lookup(id: string): Promise<Placement> {
    try {
      const { rows } = await this.#db.query(this.#sql, [id])
      return rows[0]?.placement === 'schema' ? 'schema' : 'shared'
    } catch (err) {
      if ((err as { code?: string }).code === '42P01') return 'shared'
      throw err
    }
  }
}
