import type { Queryable } from '../tenants/queryable.js'
import type { ColumnInfo, ForeignKeyInfo, TableInfo } from './types.js'

/**
 * The tables of each schema, by schema name then table name.
 *
 * @example
 * ```ts
 * const byName: SchemaTables = new Map([['tenant_1', new Map()]])
 * ```
 */
export type SchemaTables = Map<string, Map<string, TableInfo>>

const TABLES_SQL = `
select n.nspname as schema, quote_ident(n.nspname) as q_schema, c.relname as name, c.oid::int8 as oid, c.relkind = 'p' as partitioned,
       (case when c.reltuples >= 0 then c.reltuples else pg_relation_size(c.oid) / 64 end + coalesce((
          select sum(case when p.reltuples >= 0 then p.reltuples else pg_relation_size(p.oid) / 64 end)
            from pg_inherits i join pg_class p on p.oid = i.inhrelid
           where i.inhparent = c.oid), 0))::float8 as estimated
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
 where n.nspname = any($1::text[]) and c.relkind in ('r', 'p') and not c.relispartition
 order by 1, 2`

const COLUMNS_SQL = `
select a.attrelid::int8 as oid, a.attname as name, format_type(a.atttypid, a.atttypmod) as type,
       a.attnotnull as not_null, a.atthasdef as has_default, a.attgenerated = 's' as generated,
       a.attidentity as identity, t.typtype as type_kind,
       a.atttypid::int8::text as type_oid, a.atttypmod as type_mod,
       case when a.attgenerated = 's' then (select pg_get_expr(d.adbin, d.adrelid) from pg_attrdef d
                                             where d.adrelid = a.attrelid and d.adnum = a.attnum) end as generation,
       case when t.typtype = 'e' then (select array_agg(e.enumlabel::text order by e.enumsortorder)
                                         from pg_enum e where e.enumtypid = t.oid) end as enum_labels
  from pg_attribute a join pg_type t on t.oid = a.atttypid
 where a.attrelid = any($1::int8[]::oid[]) and a.attnum > 0 and not a.attisdropped
 order by a.attrelid, a.attnum`

const CONSTRAINTS_SQL = `
select k.conrelid::int8 as oid, k.conname as name, k.contype as type, k.condeferrable as deferrable,
       array(select a.attname from unnest(k.conkey) with ordinality u(n, i)
               join pg_attribute a on a.attrelid = k.conrelid and a.attnum = u.n order by u.i)::text[] as columns,
       rn.nspname as ref_schema, rc.relname as ref_table,
       array(select a.attname from unnest(k.confkey) with ordinality u(n, i)
               join pg_attribute a on a.attrelid = k.confrelid and a.attnum = u.n order by u.i)::text[] as ref_columns
  from pg_constraint k
  left join pg_class rc on rc.oid = k.confrelid
  left join pg_namespace rn on rn.oid = rc.relnamespace
 where k.conrelid = any($1::int8[]::oid[]) and k.contype in ('p', 'f') and k.conparentid = 0
 order by k.conrelid, k.conname`

const TRIGGERS_SQL = `
select g.tgrelid::int8 as oid, g.tgname as name
  from pg_trigger g
 where g.tgrelid = any($1::int8[]::oid[]) and not g.tgisinternal and g.tgenabled <> 'D'
 order by g.tgrelid, g.tgname`

/**
 * Reads every plain and partitioned table (partitions folded into their parent)
 * of the given schemas from the catalogs: columns, primary key, foreign keys,
 * enabled user triggers, a row estimate. Names are bound as parameters, so any
 * schema name is safe.
 *
 * @example
 * ```ts
 * const tables = await introspectSchemas(pool, ['tenant_1', 'public'])
 * tables.get('tenant_1')?.get('book')?.primaryKey // ['id']
 * ```
 */
export async function introspectSchemas(
  db: Queryable,
  schemas: readonly string[],
): Promise<SchemaTables> {
  const result: SchemaTables = new Map(schemas.map((s) => [s, new Map()]))
  if (schemas.length === 0) return result
  const { rows: tables } = await db.query(TABLES_SQL, [schemas])
  if (tables.length === 0) return result
  const oids = tables.map((t) => String(t.oid))
  // One after the other: `db` may be a single client.
  const columns = await db.query(COLUMNS_SQL, [oids])
  const constraints = await db.query(CONSTRAINTS_SQL, [oids])
  const triggers = await db.query(TRIGGERS_SQL, [oids])
  const group = <T>(rows: any[], map: (r: any) => T) => {
    const out = new Map<string, T[]>()
    for (const r of rows) {
      const list = out.get(String(r.oid)) ?? []
      list.push(map(r))
      out.set(String(r.oid), list)
    }
    return out
  }
  const prefixes = new Map(tables.map((t) => [String(t.oid), `${t.q_schema}.`]))
  const cols = group(columns.rows, (r) => toColumn(r, prefixes.get(String(r.oid)) ?? ''))
  const cons = group(constraints.rows, (r) => r)
  const trigs = group(triggers.rows, (r) => r.name as string)
  for (const t of tables) {
    const oid = String(t.oid)
    const own = cons.get(oid) ?? []
    const pk = own.find((c) => c.type === 'p')
    const fks: ForeignKeyInfo[] = own
      .filter((c) => c.type === 'f')
      .map((c) => ({
        name: c.name,
        columns: c.columns,
        refSchema: c.ref_schema,
        refTable: c.ref_table,
        refColumns: c.ref_columns,
        deferrable: c.deferrable,
      }))
    result.get(t.schema)?.set(t.name, {
      schema: t.schema,
      name: t.name,
      partitioned: t.partitioned,
      columns: cols.get(oid) ?? [],
      primaryKey: pk ? (pk.columns as string[]) : [],
      foreignKeys: fks,
      estimatedRows: Math.round(Number(t.estimated)),
      userTriggers: trigs.get(oid) ?? [],
    })
  }
  return result
}

function toColumn(r: any, ownPrefix: string): ColumnInfo {
  return {
    typeOid: r.type_oid,
    typeMod: Number(r.type_mod),
    // The table's own schema unqualified, so that expressions of two schemas compare.
    ...(r.generation ? { generation: (r.generation as string).split(ownPrefix).join('') } : {}),
    name: r.name,
    type: r.type,
    notNull: r.not_null,
    hasDefault: r.has_default,
    generated: r.generated,
    identity: r.identity,
    typeKind: r.type_kind,
    ...(r.enum_labels ? { enumLabels: r.enum_labels as string[] } : {}),
  }
}

/**
 * The names of the schemas that exist, out of `schemas`.
 *
 * @example
 * ```ts
 * await existingSchemas(pool, ['tenant_1', 'nope']) // Set { 'tenant_1' }
 * ```
 */
export async function existingSchemas(
  db: Queryable,
  schemas: readonly string[],
): Promise<Set<string>> {
  const { rows } = await db.query(
    'select nspname from pg_namespace where nspname = any($1::text[])',
    [schemas],
  )
  return new Set(rows.map((r) => r.nspname as string))
}

/**
 * The names of the plain and partitioned tables (not partitions) found in any of
 * `schemas`: one catalog query, however many schemas. @internal
 *
 * @example
 * ```ts
 * await tableNames(pool, ['tenant_1', 'tenant_2']) // Set { 'author', 'book', 'film' }
 * ```
 */
export async function tableNames(db: Queryable, schemas: readonly string[]): Promise<Set<string>> {
  if (schemas.length === 0) return new Set()
  const { rows } = await db.query(
    `select distinct c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = any($1::text[]) and c.relkind in ('r', 'p') and not c.relispartition`,
    [schemas],
  )
  return new Set(rows.map((r) => r.relname as string))
}
