import type { Queryable } from '../sql/queryable.js'

/**
 * How Citus holds a table: `distributed` (hash, by `column`), `reference`
 * (a copy on every node), `citus-local` (in Citus metadata, on the coordinator),
 * or `local` (a plain table on the coordinator).
 */
export type Distribution =
  | { readonly kind: 'local' }
  | { readonly kind: 'citus-local' }
  | { readonly kind: 'reference' }
  | { readonly kind: 'distributed'; readonly column: string | null; readonly colocationId: number }

/**
 * One key of a table: a primary key, a unique constraint, or a unique index
 * that no constraint owns, with its columns in order.
 */
export interface TableKey {
  readonly name: string
  readonly kind: 'primary key' | 'unique' | 'unique index'
  readonly columns: readonly string[]
}

/**
 * One foreign key, its columns and the referenced table's columns in order.
 */
export interface ForeignKey {
  readonly name: string
  readonly table: string
  readonly columns: readonly string[]
  readonly references: string
  readonly referencedColumns: readonly string[]
  /** `pg_get_constraintdef`: the clause that adds it back. */
  readonly definition: string
  /** `confdeltype` / `confupdtype`: a no action, r restrict, c cascade, n set null, d set default. */
  readonly onDelete: string
  readonly onUpdate: string
}

/**
 * What rowtenancy's Citus commands know of one table.
 */
export interface CitusTable {
  readonly oid: number
  readonly schema: string
  readonly name: string
  /** `schema.name` as users read it. */
  readonly qualified: string
  /** `"schema"."name"` for SQL. */
  readonly quoted: string
  readonly columns: readonly string[]
  readonly hasTenantColumn: boolean
  readonly keys: readonly TableKey[]
  /** Foreign keys this table holds. */
  readonly foreignKeys: readonly ForeignKey[]
  /** Policies whose USING or WITH CHECK holds a sub-select (Citus refuses them). */
  readonly subSelectPolicies: readonly string[]
  readonly rlsEnabled: boolean
  readonly rlsForced: boolean
  /** User (not internal) triggers. */
  readonly triggers: readonly string[]
  readonly distribution: Distribution
  readonly estimatedRows: number
}

/**
 * Whether the `citus` extension is installed in the database.
 *
 * @example
 * ```ts
 * if (await citusInstalled(pool)) { ... }
 * ```
 */
export async function citusInstalled(db: Queryable): Promise<boolean> {
  const { rows } = await db.query(
    `select exists (select 1 from pg_extension where extname = 'citus') as citus`,
  )
  return rows[0]?.citus === true
}

/**
 * Reads every ordinary or partitioned (root) table of `schemas` with its keys,
 * foreign keys, policies and Citus distribution. `pg_dist_partition` is read
 * only when Citus is installed.
 *
 * @example
 * ```ts
 * const tables = await loadCitusTables(pool, ['public'], 'tenant_id')
 * ```
 */
export async function loadCitusTables(
  db: Queryable,
  schemas: readonly string[],
  tenantColumn: string,
): Promise<CitusTable[]> {
  const dist = distributionSql(await citusInstalled(db))
  const { rows } = await db.query(citusTablesSql(dist), [schemas])
  return rows.map((r) => toCitusTable(r, tenantColumn))
}

/** The expression of a table's Citus distribution (`null` where Citus is not installed). */
function distributionSql(citus: boolean): string {
  return citus
    ? `(select json_build_object('method', p.partmethod::text, 'column',
          case when p.partmethod = 'h' then column_to_column_name(p.logicalrelid, p.partkey) end,
          'colocation', p.colocationid, 'repmodel', p.repmodel::text)
          from pg_dist_partition p where p.logicalrelid = c.oid)`
    : 'null::json'
}

/** The catalog query of {@link loadCitusTables}: one row per root table of `$1` schemas. */
function citusTablesSql(dist: string): string {
  return `select c.oid::int as oid, n.nspname as schema, c.relname as name,
            format('%I.%I', n.nspname, c.relname) as quoted,
            c.relrowsecurity as rls_enabled, c.relforcerowsecurity as rls_forced,
            greatest(c.reltuples, 0)::float8 as estimated_rows,
            array(select a.attname::text from pg_attribute a
                   where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
                   order by a.attnum) as columns,
            coalesce((select json_agg(json_build_object(
                'name', k.name, 'kind', k.kind, 'columns', k.columns) order by k.name)
              from (
                select con.conname::text as name,
                       case con.contype when 'p' then 'primary key' else 'unique' end as kind,
                       array(select a.attname::text from unnest(con.conkey) with ordinality u(attnum, ord)
                               join pg_attribute a on a.attrelid = c.oid and a.attnum = u.attnum
                              order by u.ord) as columns
                  from pg_constraint con
                 where con.conrelid = c.oid and con.contype in ('p', 'u')
                union all
                select i.relname::text, 'unique index',
                       array(select coalesce(a.attname::text, '(expression)')
                               from unnest(x.indkey::int2[]) with ordinality u(attnum, ord)
                               left join pg_attribute a on a.attrelid = c.oid and a.attnum = u.attnum
                              where u.ord <= x.indnkeyatts order by u.ord)
                  from pg_index x join pg_class i on i.oid = x.indexrelid
                 where x.indrelid = c.oid and x.indisunique
                   and not exists (select 1 from pg_constraint con where con.conindid = x.indexrelid)
              ) k), '[]'::json) as keys,
            coalesce((select json_agg(json_build_object(
                'name', con.conname,
                'definition', pg_get_constraintdef(con.oid),
                'onDelete', con.confdeltype::text, 'onUpdate', con.confupdtype::text,
                'references', format('%s.%s', rn.nspname, r.relname),
                'columns', array(select a.attname::text from unnest(con.conkey) with ordinality u(attnum, ord)
                                   join pg_attribute a on a.attrelid = c.oid and a.attnum = u.attnum order by u.ord),
                'referencedColumns', array(select a.attname::text from unnest(con.confkey) with ordinality u(attnum, ord)
                                   join pg_attribute a on a.attrelid = con.confrelid and a.attnum = u.attnum order by u.ord))
                order by con.conname)
               from pg_constraint con
               join pg_class r on r.oid = con.confrelid
               join pg_namespace rn on rn.oid = r.relnamespace
              where con.conrelid = c.oid and con.contype = 'f'), '[]'::json) as foreign_keys,
            array(select p.polname::text from pg_policy p
                   where p.polrelid = c.oid
                     and (coalesce(pg_get_expr(p.polqual, p.polrelid), '') ~* '\\(\\s*select\\s'
                          or coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '') ~* '\\(\\s*select\\s')
                   order by 1) as sub_select_policies,
            array(select g.tgname::text from pg_trigger g
                   where g.tgrelid = c.oid and not g.tgisinternal order by 1) as triggers,
            ${dist} as dist
       from pg_class c
       join pg_namespace n on n.oid = c.relnamespace
      where c.relkind in ('r', 'p') and not c.relispartition and n.nspname = any($1::text[])
      order by n.nspname, c.relname`
}

/** One row of {@link citusTablesSql} as a {@link CitusTable}. */
function toCitusTable(r: any, tenantColumn: string): CitusTable {
  const qualified = `${r.schema}.${r.name}`
  return {
    oid: r.oid,
    schema: r.schema,
    name: r.name,
    qualified,
    quoted: r.quoted,
    columns: r.columns,
    hasTenantColumn: (r.columns as string[]).includes(tenantColumn),
    keys: r.keys,
    foreignKeys: (r.foreign_keys as Omit<ForeignKey, 'table'>[]).map((fk) => ({
      ...fk,
      table: qualified,
    })),
    subSelectPolicies: r.sub_select_policies,
    rlsEnabled: r.rls_enabled,
    rlsForced: r.rls_forced,
    triggers: r.triggers,
    distribution: toDistribution(r.dist),
    estimatedRows: Number(r.estimated_rows),
  }
}

function toDistribution(
  d: { method: string; column: string | null; colocation: number; repmodel: string } | null,
): Distribution {
  if (!d) return { kind: 'local' }
  if (d.method === 'h') return { kind: 'distributed', column: d.column, colocationId: d.colocation }
  return d.method === 'n' && d.repmodel === 't' ? { kind: 'reference' } : { kind: 'citus-local' }
}
