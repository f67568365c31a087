/**
 * Every catalog query rowtenancy runs, each with the type of its rows.
 *
 * The template queries (`SCHEMA_*`, `TABLES` .. `NOT_CARRIED`) take the schema
 * name as `$1` (or table oids as `$1::oid[]`) and run with the schema first on
 * the `search_path`, so PostgreSQL deparses the schema's own objects
 * unqualified. Version-dependent columns (PostgreSQL 15+) are read through
 * `to_jsonb(row)` so the queries also run on older servers.
 */

export const SCHEMA_EXISTS = 'select 1 from pg_namespace where nspname = $1'

export const TABLES = `
select c.oid::int8::text as oid, c.relname as name, c.relkind as kind,
       case when c.relkind = 'p' then pg_get_partkeydef(c.oid) end as partition_key,
       case when c.relispartition then (
         select p.relname from pg_inherits i join pg_class p on p.oid = i.inhparent
          where i.inhrelid = c.oid and p.relnamespace = c.relnamespace) end as parent,
       case when c.relispartition then pg_get_expr(c.relpartbound, c.oid) end as bound,
       exists (select 1 from pg_inherits i where i.inhrelid = c.oid) and not c.relispartition as inherits
  from pg_class c
  join pg_namespace n on n.oid = c.relnamespace
 where n.nspname = $1 and c.relkind in ('r', 'p')
   and ($2::text[] is null or c.relname = any($2::text[]))
 order by c.relname collate "C"`

export const COLUMNS = `
select a.attrelid::int8::text as table_oid, a.attname as name,
       format_type(a.atttypid, a.atttypmod) as type, a.atttypid::int8::text as type_oid,
       a.attnotnull as not_null, a.attidentity as identity, a.attgenerated as generated,
       pg_get_expr(d.adbin, d.adrelid) as expr, a.attislocal as local,
       case when a.attcollation <> 0 and a.attcollation <> t.typcollation then
         quote_ident(cn.nspname) || '.' || quote_ident(co.collname) end as collation
  from pg_attribute a
  join pg_type t on t.oid = a.atttypid
  left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
  left join pg_collation co on co.oid = a.attcollation
  left join pg_namespace cn on cn.oid = co.collnamespace
 where a.attrelid = any($1::oid[]) and a.attnum > 0 and not a.attisdropped
 order by a.attrelid, a.attnum`

export const CONSTRAINTS = `
select con.conrelid::int8::text as table_oid, con.conname as name, con.contype as type,
       pg_get_constraintdef(con.oid) as definition,
       array(select a.attname::text from unnest(con.conkey) with ordinality k(attnum, ord)
               join pg_attribute a on a.attrelid = con.conrelid and a.attnum = k.attnum
              order by k.ord) as columns,
       array(select a.attname::text from unnest(con.confkey) with ordinality k(attnum, ord)
               join pg_attribute a on a.attrelid = con.confrelid and a.attnum = k.attnum
              order by k.ord) as ref_columns,
       array(select a.attname::text
               from jsonb_array_elements_text(
                      coalesce(nullif(to_jsonb(con) -> 'confdelsetcols', 'null'), '[]')) k(attnum)
               join pg_attribute a on a.attrelid = con.conrelid and a.attnum = k.attnum::int2) as delete_columns,
       array(select a.attname::text from pg_index i
              cross join lateral unnest(i.indkey::int2[]) with ordinality k(attnum, ord)
               join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
              where i.indexrelid = con.conindid and con.contype in ('p', 'u')
                and k.ord > i.indnkeyatts order by k.ord) as include,
       coalesce((select (to_jsonb(i) ->> 'indnullsnotdistinct')::boolean from pg_index i
                  where i.indexrelid = con.conindid and con.contype = 'u'), false) as nulls_not_distinct,
       fn.nspname as ref_schema, fc.relname as ref_table,
       con.confupdtype as on_update, con.confdeltype as on_delete, con.confmatchtype as match,
       con.condeferrable as deferrable, con.condeferred as deferred,
       (select am.amname::text from pg_class ic join pg_am am on am.oid = ic.relam
         where ic.oid = con.conindid and con.contype = 'x') as method,
       (select quote_ident(am.amname) from pg_class ic join pg_am am on am.oid = ic.relam
         where ic.oid = con.conindid and con.contype = 'x') as q_method
  from pg_constraint con
  left join pg_class fc on fc.oid = con.confrelid
  left join pg_namespace fn on fn.oid = fc.relnamespace
 where con.conrelid = any($1::oid[]) and con.contype in ('p', 'u', 'f', 'c', 'x')
   and con.conislocal and con.conparentid = 0
 order by con.conrelid, con.conname collate "C"`

export const INDEXES = `
select i.indrelid::int8::text as table_oid, ic.relname as name, i.indisunique as unique,
       am.amname as method, pg_get_indexdef(i.indexrelid) as definition,
       quote_ident(ic.relname) as q_name, quote_ident(n.nspname) as q_schema,
       quote_ident(tc.relname) as q_table, quote_ident(am.amname) as q_method,
       array(select pg_get_indexdef(i.indexrelid, k, true)
               from generate_series(1, i.indnkeyatts) k) as keys
  from pg_index i
  join pg_class ic on ic.oid = i.indexrelid
  join pg_class tc on tc.oid = i.indrelid
  join pg_namespace n on n.oid = tc.relnamespace
  join pg_am am on am.oid = ic.relam
 where i.indrelid = any($1::oid[])
   and not exists (select 1 from pg_constraint c
                    where c.conindid = i.indexrelid and c.conrelid = i.indrelid
                      and c.contype in ('p', 'u', 'x'))
   and not exists (select 1 from pg_inherits h where h.inhrelid = i.indexrelid)
 order by i.indrelid, ic.relname collate "C"`

export const TYPES = `
select t.oid::int8::text as oid, t.typname as name, t.typtype as kind,
       t.typbasetype::int8::text as base_oid, t.typelem::int8::text as elem_oid,
       case when t.typtype = 'd' then format_type(t.typbasetype, t.typtypmod) end as base_type,
       t.typnotnull as not_null, pg_get_expr(t.typdefaultbin, 0) as default,
       case when t.typtype = 'd' and t.typcollation <> 0 and t.typcollation <> bt.typcollation then
         (select quote_ident(cn.nspname) || '.' || quote_ident(co.collname)
            from pg_collation co join pg_namespace cn on cn.oid = co.collnamespace
           where co.oid = t.typcollation) end as collation,
       array(select e.enumlabel::text from pg_enum e where e.enumtypid = t.oid
              order by e.enumsortorder) as labels,
       coalesce((select jsonb_agg(jsonb_build_array(c.conname, pg_get_constraintdef(c.oid))
                                  order by c.conname collate "C")
                   from pg_constraint c where c.contypid = t.oid and c.contype = 'c'), '[]') as checks,
       case t.typtype
         when 'c' then (select 'AS (' || string_agg(quote_ident(a.attname) || ' ' || format_type(a.atttypid, a.atttypmod)
                                 || case when a.attcollation <> 0 and a.attcollation <> at.typcollation then
                                      (select ' COLLATE ' || quote_ident(cn.nspname) || '.' || quote_ident(co.collname)
                                         from pg_collation co join pg_namespace cn on cn.oid = co.collnamespace
                                        where co.oid = a.attcollation) else '' end, ', ' order by a.attnum) || ')'
                          from pg_attribute a join pg_type at on at.oid = a.atttypid
                         where a.attrelid = t.typrelid and a.attnum > 0 and not a.attisdropped)
         when 'r' then (select 'AS RANGE (SUBTYPE = ' || format_type(r.rngsubtype, null)
                                 || case when r.rngsubdiff <> 0 then ', SUBTYPE_DIFF = ' || r.rngsubdiff::regproc::text else '' end
                                 || ')'
                          from pg_range r join pg_type st on st.oid = r.rngsubtype
                         where r.rngtypid = t.oid and r.rngcanonical = 0
                           and (r.rngcollation = 0 or r.rngcollation = st.typcollation)
                           and r.rngsubopc = (select o.oid from pg_opclass o join pg_am m on m.oid = o.opcmethod
                                               where m.amname = 'btree' and o.opcintype = r.rngsubtype and o.opcdefault))
       end as definition,
       case t.typtype
         when 'c' then array(select a.atttypid::int8::text from pg_attribute a
                              where a.attrelid = t.typrelid and a.attnum > 0 and not a.attisdropped)
         when 'r' then array(select r.rngsubtype::int8::text from pg_range r where r.rngtypid = t.oid)
         when 'm' then array(select r.rngtypid::int8::text from pg_range r where r.rngmultitypid = t.oid)
         else '{}'::text[]
       end as depends_on
  from pg_type t
  join pg_namespace n on n.oid = t.typnamespace
  left join pg_type bt on bt.oid = t.typbasetype
 where n.nspname = $1 and (t.typtype in ('e', 'd', 'c', 'r', 'm') or t.typelem <> 0)
   and not exists (select 1 from pg_class c where c.oid = t.typrelid and c.relkind <> 'c')`

export const SEQUENCES = `
select c.relname as name, format_type(s.seqtypid, null) as data_type,
       s.seqstart::text as start, s.seqincrement::text as increment,
       s.seqmin::text as min, s.seqmax::text as max, s.seqcache::text as cache, s.seqcycle as cycle,
       d.deptype as dep, tc.relname as owner_table, ta.attname as owner_column
  from pg_sequence s
  join pg_class c on c.oid = s.seqrelid
  join pg_namespace n on n.oid = c.relnamespace
  left join pg_depend d on d.classid = 'pg_class'::regclass and d.objid = c.oid
        and d.refclassid = 'pg_class'::regclass and d.deptype in ('a', 'i')
  left join pg_class tc on tc.oid = d.refobjid and tc.relnamespace = c.relnamespace
  left join pg_attribute ta on ta.attrelid = d.refobjid and ta.attnum = d.refobjsubid
 where n.nspname = $1
 order by c.relname collate "C"`

export const EXTENSIONS = `
select exists (select 1 from pg_extension where extname = 'btree_gin') as btree_gin,
       exists (select 1 from pg_extension where extname = 'btree_gist') as btree_gist`

/**
 * A condition on `pg_trigger` row `g` that leaves out the triggers an online
 * migration puts on legacy tables (`rowtenancy_capture_ins` .. `_trn`, the names
 * of `src/migrate/online/capture-sql.ts`): the migration's own, never a schema's
 * to carry over to the shared tables (they would refuse their writes) nor to
 * compare.
 */
export const NOT_MIGRATION_TRIGGER = `g.tgname::text !~ '^rowtenancy_capture_(ins|upd|del|trn)$'`

export const NOT_CARRIED = `
select (select count(*) from pg_trigger g join pg_class c on c.oid = g.tgrelid
         where c.relnamespace = n.oid and not g.tgisinternal and ${NOT_MIGRATION_TRIGGER})::int as triggers,
       (select count(*) from pg_class c
         where c.relnamespace = n.oid and c.relkind in ('v', 'm'))::int as views,
       (select count(*) from pg_proc p where p.pronamespace = n.oid)::int as functions
  from pg_namespace n where n.nspname = $1`

/** A row of {@link TABLES}. */
export interface TemplateTableRow {
  oid: string
  name: string
  kind: 'r' | 'p'
  partition_key: string | null
  parent: string | null
  bound: string | null
  inherits: boolean
}

/** A row of {@link COLUMNS}. */
export interface TemplateColumnRow {
  table_oid: string
  name: string
  type: string
  type_oid: string
  not_null: boolean
  identity: '' | 'a' | 'd'
  generated: '' | 's'
  expr: string | null
  local: boolean
  collation: string | null
}

/** A row of {@link CONSTRAINTS}. */
export interface TemplateConstraintRow {
  table_oid: string
  name: string
  type: 'p' | 'u' | 'f' | 'c' | 'x'
  definition: string
  columns: string[]
  ref_columns: string[]
  delete_columns: string[]
  include: string[]
  nulls_not_distinct: boolean
  ref_schema: string | null
  ref_table: string | null
  on_update: string
  on_delete: string
  match: string
  deferrable: boolean
  deferred: boolean
  method: string | null
  q_method: string | null
}

/** A row of {@link INDEXES}. */
export interface TemplateIndexRow {
  table_oid: string
  name: string
  unique: boolean
  method: string
  definition: string
  q_name: string
  q_schema: string
  q_table: string
  q_method: string
  keys: string[]
}

/** A row of {@link TYPES}. */
export interface TemplateTypeRow {
  oid: string
  name: string
  kind: string
  base_oid: string
  elem_oid: string
  base_type: string | null
  not_null: boolean
  default: string | null
  collation: string | null
  labels: string[]
  checks: [string, string][]
  /** A composite or range type's `AS (...)` / `AS RANGE (...)`, when it can be carried over. */
  definition: string | null
  /** The types a composite's attributes or a range's subtype are of; a multirange's range. */
  depends_on: string[]
}

/** A row of {@link SEQUENCES}. */
export interface TemplateSequenceRow {
  name: string
  data_type: string
  start: string
  increment: string
  min: string
  max: string
  cache: string
  cycle: boolean
  dep: 'a' | 'i' | null
  owner_table: string | null
  owner_column: string | null
}

/** The row of {@link EXTENSIONS}. */
export interface ExtensionsRow {
  btree_gin: boolean
  btree_gist: boolean
}

/** The row of {@link NOT_CARRIED}. */
export interface NotCarriedRow {
  triggers: number
  views: number
  functions: number
}

/**
 * The plain and partitioned tables (not partitions) of the schemas `$1`, with a
 * row estimate summed over partitions (the relation size when never analyzed).
 */
export const SUMMARY_TABLES = `
select n.nspname as schema, quote_ident(n.nspname) as q_schema, c.relname as name, c.oid::int8 as oid,
       c.relkind = 'p' as partitioned,
       (case when c.reltuples >= 0 then c.reltuples else pg_relation_size(c.oid) / 64 end + coalesce((
          select sum(case when p.reltuples >= 0 then p.reltuples else pg_relation_size(p.oid) / 64 end)
            from pg_inherits i join pg_class p on p.oid = i.inhrelid
           where i.inhparent = c.oid), 0))::float8 as estimated
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
 where n.nspname = any($1::text[]) and c.relkind in ('r', 'p') and not c.relispartition
 order by 1, 2`

/** A row of {@link SUMMARY_TABLES}. */
export interface SummaryTableRow {
  schema: string
  q_schema: string
  name: string
  oid: string
  partitioned: boolean
  estimated: number
}

/** The columns of the tables `$1` (oids), in order, with enum labels. */
export const SUMMARY_COLUMNS = `
select a.attrelid::int8 as oid, a.attname as name, format_type(a.atttypid, a.atttypmod) as type,
       a.attnotnull as not_null, a.atthasdef as has_default, a.attgenerated = 's' as generated,
       a.attidentity as identity, t.typtype as type_kind,
       a.atttypid::int8::text as type_oid, a.atttypmod as type_mod,
       case when t.typsend <> 0 and p.pronamespace = 'pg_catalog'::regnamespace then p.proname::text end as type_send,
       case when a.attgenerated = 's' then (select pg_get_expr(d.adbin, d.adrelid) from pg_attrdef d
                                             where d.adrelid = a.attrelid and d.adnum = a.attnum) end as generation,
       case when t.typtype = 'e' then (select array_agg(e.enumlabel::text order by e.enumsortorder)
                                         from pg_enum e where e.enumtypid = t.oid) end as enum_labels
  from pg_attribute a join pg_type t on t.oid = a.atttypid left join pg_proc p on p.oid = t.typsend
 where a.attrelid = any($1::int8[]::oid[]) and a.attnum > 0 and not a.attisdropped
 order by a.attrelid, a.attnum`

/** A row of {@link SUMMARY_COLUMNS}. */
export interface SummaryColumnRow {
  oid: string
  name: string
  type: string
  not_null: boolean
  has_default: boolean
  generated: boolean
  identity: '' | 'a' | 'd'
  type_kind: string
  type_oid: string
  type_mod: number
  type_send: string | null
  generation: string | null
  enum_labels: string[] | null
}

/** The primary and foreign keys of the tables `$1` (oids). */
export const SUMMARY_CONSTRAINTS = `
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

/** A row of {@link SUMMARY_CONSTRAINTS}. */
export interface SummaryConstraintRow {
  oid: string
  name: string
  type: 'p' | 'f'
  deferrable: boolean
  columns: string[]
  ref_schema: string | null
  ref_table: string | null
  ref_columns: string[]
}

/** The enabled user triggers of the tables `$1` (oids). */
export const SUMMARY_TRIGGERS = `
select g.tgrelid::int8 as oid, g.tgname as name
  from pg_trigger g
 where g.tgrelid = any($1::int8[]::oid[]) and not g.tgisinternal and g.tgenabled <> 'D'
   and ${NOT_MIGRATION_TRIGGER}
 order by g.tgrelid, g.tgname`

/** A row of {@link SUMMARY_TRIGGERS}. */
export interface SummaryTriggerRow {
  oid: string
  name: string
}

/** The schemas that exist out of `$1`. */
export const EXISTING_SCHEMAS = 'select nspname from pg_namespace where nspname = any($1::text[])'

/** The distinct names of the plain and partitioned tables (not partitions) of the schemas `$1`. */
export const TABLE_NAMES = `select distinct c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = any($1::text[]) and c.relkind in ('r', 'p') and not c.relispartition`

/**
 * The tables named `$1` (`schema.table` or `table`, resolved through the
 * search path), in order, with their RLS flags and the tenant column `$2`.
 */
export const TABLE_FACTS = `select t.name as input, c.oid::int as oid, n.nspname as schema, c.relname as name,
        case when c.oid is not null then format('%I.%I', n.nspname, c.relname) end as quoted,
        c.relrowsecurity as enabled, c.relforcerowsecurity as forced,
        a.attnum::int as attnum, a.attnotnull as notnull,
        format_type(a.atttypid, a.atttypmod) as type
   from unnest($1::text[]) with ordinality as t(name, ord)
   left join pg_class c on c.oid = to_regclass(t.name)
   left join pg_namespace n on n.oid = c.relnamespace
   left join pg_attribute a on a.attrelid = c.oid and a.attname = $2 and a.attnum > 0 and not a.attisdropped
  order by t.ord`

/** A row of {@link TABLE_FACTS}; the table columns are null when the name resolves to nothing. */
export interface TableFactsRow {
  input: string
  oid: number | null
  schema: string
  name: string
  quoted: string
  enabled: boolean
  forced: boolean
  attnum: number | null
  notnull: boolean | null
  type: string | null
}

/**
 * The types `$1` (oids) by structure: kind, name, schema, array element, domain
 * base and checks, enum labels, composite attributes, range subtype.
 */
export const TYPE_SHAPES = `
select t.oid::int8::text as oid, n.nspname as schema, quote_ident(n.nspname) as q_schema,
       t.typname as name, format_type(t.oid, null) as display,
       case when t.typcategory = 'A' and t.typelem <> 0 then 'A' else t.typtype::text end as kind,
       case when t.typcategory = 'A' and t.typelem <> 0 then t.typelem::int8::text end as elem,
       nullif(t.typbasetype, 0)::int8::text as base, t.typtypmod as base_mod, t.typnotnull as not_null,
       (select g.rngsubtype::int8::text from pg_range g where g.rngtypid = t.oid) as subtype,
       (select g.rngtypid::int8::text from pg_range g where g.rngmultitypid = t.oid) as multi_of,
       array(select e.enumlabel::text from pg_enum e where e.enumtypid = t.oid order by e.enumsortorder) as labels,
       coalesce((select jsonb_agg(jsonb_build_array(a.attname, a.atttypid::int8::text, a.atttypmod) order by a.attnum)
                   from pg_attribute a
                  where t.typtype = 'c' and a.attrelid = t.typrelid and a.attnum > 0 and not a.attisdropped), '[]') as attributes,
       array(select pg_get_constraintdef(c.oid) from pg_constraint c
              where c.contypid = t.oid and c.contype = 'c' order by pg_get_constraintdef(c.oid)) as checks
  from pg_type t join pg_namespace n on n.oid = t.typnamespace
 where t.oid = any($1::int8[]::oid[])`

/** A row of {@link TYPE_SHAPES}. */
export interface TypeShapeRow {
  oid: string
  schema: string
  q_schema: string
  name: string
  display: string
  kind: string
  elem: string | null
  base: string | null
  base_mod: number
  not_null: boolean
  subtype: string | null
  multi_of: string | null
  labels: string[] | null
  attributes: [string, string, number][]
  checks: string[]
}
