import { createHash } from 'node:crypto'
import { LifecycleError } from '../errors/index.js'
import { foreignKeyOrder } from '../migrate/order.js'
import type { TableInfo } from '../migrate/types.js'
import { isTenantPredicate } from '../schema/rls-apply.js'
import { introspectSchemas } from '../sql/catalog/index.js'
import type { Queryable } from '../sql/queryable.js'

/**
 * One tenant-aware table as the lifecycle operations see it.
 */
export interface LifecycleTable {
  readonly name: string
  /** What the catalog says about the table (columns, keys, partitioning). */
  readonly info: TableInfo
  /** The columns an archive carries: the tenant column first, then every stored, non-generated column. */
  readonly copyColumns: readonly string[]
  /** The columns the checksum covers: `copyColumns` without the tenant column (so it does not depend on the id). */
  readonly checksumColumns: readonly string[]
}

/**
 * Where the tenant tables are and what they are called.
 */
export interface TenantLayout {
  /** The schema of the tenant-aware tables; `public` by default. */
  readonly schema: string
  /** The schema of `tenants` / `tenant_domains`; `schema` by default. */
  readonly tenantsSchema: string
  readonly tenantColumn: string
  readonly idType: 'bigint' | 'integer' | 'uuid' | 'text'
}

/** Tables that carry a tenant column but belong to rowtenancy's own bookkeeping. */
const OWN_TABLES = new Set(['tenants', 'tenant_domains', 'tenant_placements'])

/**
 * The tenant-aware tables of `layout.schema` (every plain or partitioned table
 * with the tenant column that references `tenants` or has row level security, except rowtenancy's own `tenants`, `tenant_domains`,
 * `tenant_placements` and `rowtenancy_*` ledgers), in foreign-key order (a table
 * after the tables it references), with the tables caught in cycles.
 *
 * @example
 * ```ts
 * const { tables } = await tenantTables(pool, layout)
 * tables.map((t) => t.name) // ['author', 'book', 'book_tag']
 * ```
 */
export async function tenantTables(
  db: Queryable,
  layout: Pick<TenantLayout, 'schema' | 'tenantColumn' | 'tenantsSchema'>,
): Promise<{ tables: LifecycleTable[]; cyclic: string[] }> {
  const all =
    (await introspectSchemas(db, [layout.schema])).get(layout.schema) ??
    new Map<string, TableInfo>()
  const { rows } = await db.query(
    `select c.relname, pg_catalog.pg_get_expr(p.polqual, p.polrelid) as using
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
       left join pg_policy p on p.polrelid = c.oid
      where n.nspname = $1 and c.relkind in ('r', 'p') and c.relrowsecurity`,
    [layout.schema],
  )
  const rls = new Set(rows.map((r) => r.relname as string))
  // tables whose row level security is rowtenancy's predicate on this very column
  const policed = new Set(
    rows
      .filter(
        (r) =>
          isTenantPredicate(r.using, layout.tenantColumn) ||
          isTenantPredicate(r.using, layout.tenantColumn, true),
      )
      .map((r) => r.relname as string),
  )
  const referencesTenants = (t: TableInfo) =>
    t.foreignKeys.some(
      (fk) =>
        fk.refTable === 'tenants' &&
        fk.refSchema === layout.tenantsSchema &&
        fk.columns.length === 1 &&
        fk.columns[0] === layout.tenantColumn,
    )
  const direct = [...all.values()].filter(
    (t) =>
      !OWN_TABLES.has(t.name) &&
      !t.name.startsWith('rowtenancy_') &&
      t.columns.some((c) => c.name === layout.tenantColumn) &&
      (referencesTenants(t) || rls.has(t.name)),
  )
  const children = await inheritanceChildren(
    db,
    layout.schema,
    direct.map((t) => t.name),
  )
  const aware = [
    ...direct,
    ...children.flatMap((name) => {
      const t = all.get(name)
      return t && !direct.includes(t) ? [t] : []
    }),
  ]
  // A wrong schema or column must not read as a tenant that owns nothing (an empty export, an
  // "erased" certificate, a move that verifies nothing): some table must hold the column as the
  // tenant column, by a key to tenants or by rowtenancy's policy on it.
  if (!aware.some((t) => referencesTenants(t) || policed.has(t.name))) {
    throw new LifecycleError(
      `No table in schema ${JSON.stringify(layout.schema)} has ${JSON.stringify(layout.tenantColumn)} as its ` +
        `tenant column (a column referencing ${layout.tenantsSchema}.tenants, or under rowtenancy's policy): ` +
        'check the schema and the tenant column given (`targetSchema`, `tenantColumn`). Nothing was changed.',
    )
  }
  const names = aware.map((t) => t.name)
  const edges = aware.flatMap((t) =>
    t.foreignKeys
      .filter((fk) => fk.refSchema === layout.schema)
      .map((fk) => [t.name, fk.refTable] as const),
  )
  const { order, cyclic } = foreignKeyOrder(names, edges)
  const byName = new Map(aware.map((t) => [t.name, t]))
  const tables = order.map((name) => {
    const info = byName.get(name)!
    const stored = info.columns.filter((c) => !c.generated).map((c) => c.name)
    const rest = stored.filter((c) => c !== layout.tenantColumn)
    return { name, info, copyColumns: [layout.tenantColumn, ...rest], checksumColumns: rest }
  })
  return { tables, cyclic: [...cyclic].sort() }
}

/**
 * A short fingerprint of the tenant tables' shape: table names, column names
 * and types, sorted. Two databases with the same fingerprint take each other's
 * archives without any conversion.
 *
 * @example
 * ```ts
 * schemaFingerprint(tables) // 'sha256:3f1c0a9b2e4d...'
 * ```
 */
export function schemaFingerprint(tables: readonly LifecycleTable[]): string {
  const shape = [...tables]
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((t) => [t.name, t.info.columns.map((c) => [c.name, c.type, c.generated])])
  return `sha256:${createHash('sha256').update(JSON.stringify(shape)).digest('hex')}`
}

/**
 * The inheritance children (at any depth, not partitions) of the tables `names` of `schema`:
 * each table's own rows are read, counted and erased (ONLY), so a child holding the tenant's
 * rows is a tenant table of its own, even with no key to tenants nor a policy. A child in
 * another schema is refused: the operation would leave its rows behind.
 */
async function inheritanceChildren(
  db: Queryable,
  schema: string,
  names: readonly string[],
): Promise<string[]> {
  if (names.length === 0) return []
  const { rows } = await db.query(
    `with recursive below (oid) as (
       select i.inhrelid from pg_catalog.pg_inherits i
         join pg_catalog.pg_class p on p.oid = i.inhparent
         join pg_catalog.pg_namespace n on n.oid = p.relnamespace
        where n.nspname = $1 and p.relname = any ($2::text[]) and p.relkind = 'r'
       union
       select i.inhrelid from pg_catalog.pg_inherits i join below on i.inhparent = below.oid)
     select n.nspname as schema, c.relname as name
       from below join pg_catalog.pg_class c on c.oid = below.oid
       join pg_catalog.pg_namespace n on n.oid = c.relnamespace
      where not c.relispartition
      order by 2`,
    [schema, names],
  )
  const elsewhere = (rows as { schema: string; name: string }[]).filter((r) => r.schema !== schema)
  if (elsewhere.length > 0) {
    throw new LifecycleError(
      `The tenant tables of schema ${JSON.stringify(schema)} have inheritance children in other schemas ` +
        `(${elsewhere.map((r) => `${r.schema}.${r.name}`).join(', ')}): their rows would be left out. ` +
        'Move the children into the schema, or detach them (alter table ... no inherit ...). Nothing was changed.',
    )
  }
  return rows.map((r) => r.name as string)
}
