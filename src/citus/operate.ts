import { ConfigError, InvalidInputError } from '../errors/index.js'
import { DEFAULTS } from '../sql/defaults.js'
import type { Queryable } from '../sql/queryable.js'
import { quoteLiteral } from '../sql/quote.js'
import { parseTenantId, type TenantIdType } from '../tenants/id-types.js'
import { citusInstalled } from './catalog.js'

/**
 * Where one tenant's rows live: the shard of the anchor table (every co-located
 * tenant table has its rows on the same node), that node, and whether the shard
 * holds this tenant alone (after `citus isolate`).
 */
export interface TenantPlacement {
  readonly tenantId: string
  readonly table: string
  readonly shardId: number
  readonly node: string
  readonly isolated: boolean
}

/**
 * Options of {@link isolateTenant}.
 */
export interface IsolateOptions {
  readonly tenantId: unknown
  readonly tenantIdType?: TenantIdType | undefined
  readonly tenantColumn?: string | undefined
  /** `host:port` of the node to move the new shard to (`citus_move_shard_placement`). */
  readonly toNode?: string | undefined
  /** Citus' `shard_transfer_mode`; `block_writes` by default (no logical replication needed). */
  readonly transferMode?: 'block_writes' | 'force_logical' | 'auto' | undefined
  readonly dryRun?: boolean | undefined
}

/**
 * What {@link isolateTenant} did or, with `dryRun`, would do.
 */
export interface IsolateResult {
  readonly before: TenantPlacement
  readonly after: TenantPlacement | null
  readonly sql: readonly string[]
  readonly changed: boolean
  readonly dryRun: boolean
}

async function anchorTable(db: Queryable, column: string): Promise<string> {
  if (!(await citusInstalled(db))) {
    throw new ConfigError('The citus extension is not installed in this database.')
  }
  const { rows } = await db.query(
    `select p.logicalrelid::regclass::text as t from pg_dist_partition p
      where p.partmethod = 'h' and column_to_column_name(p.logicalrelid, p.partkey) = $1
      order by p.colocationid, p.logicalrelid::regclass::text limit 1`,
    [column],
  )
  if (!rows[0]) {
    throw new ConfigError(
      `No table is distributed by ${column}: run rowtenancy citus distribute first.`,
    )
  }
  return rows[0].t
}

/**
 * Finds where a tenant's rows live (read-only).
 *
 * @example
 * ```ts
 * const where = await tenantPlacement(pool, '7') // { shardId: 102012, node: '127.0.0.1:9702', ... }
 * ```
 */
export async function tenantPlacement(
  db: Queryable,
  tenantId: unknown,
  options: { tenantIdType?: TenantIdType | undefined; tenantColumn?: string | undefined } = {},
): Promise<TenantPlacement> {
  const id = parseTenantId(options.tenantIdType ?? DEFAULTS.tenantIdType, tenantId)
  const table = await anchorTable(db, options.tenantColumn ?? DEFAULTS.tenantColumn)
  const { rows } = await db.query(
    `select s.shardid::int8 as shard, s.nodename || ':' || s.nodeport as node,
            d.shardminvalue = d.shardmaxvalue as isolated
       from pg_dist_shard d join citus_shards s using (shardid)
      where d.shardid = get_shard_id_for_distribution_column($1::regclass, $2::text)`,
    [table, id],
  )
  const r = rows[0]
  if (!r) throw new ConfigError(`No shard placement found for tenant ${id} in ${table}.`)
  return { tenantId: id, table, shardId: Number(r.shard), node: r.node, isolated: r.isolated }
}

/**
 * Gives a big tenant a shard of its own (`isolate_tenant_to_new_shard(..., 'CASCADE')`:
 * every co-located table follows), then optionally moves that shard to another
 * node (`citus_move_shard_placement`). Idempotent: an isolated tenant is not
 * split again, and a shard already on the target node is not moved.
 *
 * @example
 * ```ts
 * await isolateTenant(pool, { tenantId: '7', toNode: '127.0.0.1:9701' })
 * ```
 */
export async function isolateTenant(
  db: Queryable,
  options: IsolateOptions,
): Promise<IsolateResult> {
  const type = options.tenantIdType ?? DEFAULTS.tenantIdType
  const mode = options.transferMode ?? 'block_writes'
  if (!['block_writes', 'force_logical', 'auto'].includes(mode)) {
    throw new InvalidInputError(
      `--transfer-mode must be block_writes, force_logical or auto, not ${mode}.`,
    )
  }
  const target = options.toNode === undefined ? undefined : await shardNode(db, options.toNode)
  const place = { tenantIdType: type, tenantColumn: options.tenantColumn }
  const before = await tenantPlacement(db, options.tenantId, place)
  const id = before.tenantId
  const sql: string[] = []
  const lit = quoteLiteral
  if (!before.isolated) {
    sql.push(
      `select isolate_tenant_to_new_shard(${lit(before.table)}, ${lit(id)}, 'CASCADE', shard_transfer_mode => ${lit(mode)})`,
    )
  }
  const move = (shard: string, from: string) => moveShardSql(shard, parseNode(from), target!, mode)
  const targetNode = target ? `${target.host}:${target.port}` : undefined
  if (targetNode && targetNode !== before.node) sql.push(move('<new shard>', before.node))
  if (options.dryRun || sql.length === 0) {
    return {
      before,
      after: options.dryRun ? null : before,
      sql,
      changed: false,
      dryRun: !!options.dryRun,
    }
  }
  let shard = before.shardId
  if (!before.isolated) {
    const { rows } = await db.query(sql[0]!)
    shard = Number(Object.values(rows[0] as object)[0])
  }
  const ran = before.isolated ? [] : [sql[0]!]
  if (targetNode && targetNode !== before.node) {
    const s = move(String(shard), before.node)
    await db.query(s)
    ran.push(s)
  }
  const after = await tenantPlacement(db, id, place)
  return { before, after, sql: ran, changed: true, dryRun: false }
}

/** The node `text` names, checked to be an active node that holds shards. */
async function shardNode(db: Queryable, text: string): Promise<{ host: string; port: number }> {
  const target = parseNode(text)
  const { rows } = await db.query(
    `select 1 from pg_dist_node where nodename = $1 and nodeport = $2 and isactive and shouldhaveshards`,
    [target.host, target.port],
  )
  if (rows.length === 0) {
    throw new InvalidInputError(
      `${text} is not an active node that holds shards: pick one from select nodename, nodeport from pg_dist_node.`,
    )
  }
  return target
}

/** The statement that moves `shard` from one node to another. */
function moveShardSql(
  shard: string,
  from: { host: string; port: number },
  to: { host: string; port: number },
  mode: string,
): string {
  const lit = quoteLiteral
  return `select citus_move_shard_placement(${shard}, ${lit(from.host)}, ${from.port}, ${lit(to.host)}, ${to.port}, shard_transfer_mode => ${lit(mode)})`
}

function parseNode(text: string): { host: string; port: number } {
  const m = /^(.+):(\d{1,5})$/.exec(text)
  if (!m)
    throw new InvalidInputError(
      `A node is host:port (e.g. 10.0.0.5:5432), not ${JSON.stringify(text)}.`,
    )
  return { host: m[1]!, port: Number(m[2]) }
}

/**
 * One row of {@link hotTenants}.
 */
export interface HotTenant {
  readonly tenantId: string
  /** Queries in the current and the last period (`citus.stat_tenants_period`). */
  readonly queries: number
  readonly reads: number
  readonly cpuSeconds: number
  readonly shardId: number
  readonly node: string
}

/**
 * The hottest tenants from `citus_stat_tenants` (queries in this and the last
 * period), each with its shard and node. Read-only. Citus counts tenants only
 * with `citus.stat_tenants_track = 'all'`; `tracking` says what it is.
 *
 * @example
 * ```ts
 * const { tracking, tenants } = await hotTenants(pool, { limit: 10 })
 * ```
 */
export async function hotTenants(
  db: Queryable,
  options: { limit?: number | undefined; tenantColumn?: string | undefined } = {},
): Promise<{ tracking: string; tenants: HotTenant[] }> {
  const limit = options.limit ?? 10
  if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) {
    throw new InvalidInputError(
      `--limit must be a whole number from 1 to 10000, not ${options.limit}.`,
    )
  }
  const table = await anchorTable(db, options.tenantColumn ?? DEFAULTS.tenantColumn)
  const tracking = (await db.query(`select current_setting('citus.stat_tenants_track') as t`))
    .rows[0].t
  const { rows } = await db.query(
    `with t as (
       select tenant_attribute, sum(query_count_in_this_period + query_count_in_last_period)::int8 as queries,
              sum(read_count_in_this_period + read_count_in_last_period)::int8 as reads,
              sum(cpu_usage_in_this_period + cpu_usage_in_last_period)::float8 as cpu
         from citus_stat_tenants
        where colocation_id = (select colocationid from pg_dist_partition where logicalrelid = $1::regclass)
        group by tenant_attribute order by 2 desc, 1 limit $2)
     select t.*, s.shardid::int8 as shard, s.nodename || ':' || s.nodeport as node
       from t join citus_shards s
         on s.shardid = get_shard_id_for_distribution_column($1::regclass, t.tenant_attribute)
      order by t.queries desc, t.tenant_attribute`,
    [table, limit],
  )
  return {
    tracking,
    tenants: rows.map((r) => ({
      tenantId: r.tenant_attribute,
      queries: Number(r.queries),
      reads: Number(r.reads),
      cpuSeconds: Number(r.cpu),
      shardId: Number(r.shard),
      node: r.node,
    })),
  }
}
