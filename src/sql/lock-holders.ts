import { quoteLiteral } from './quote.js'

/** The table lock modes rowtenancy takes or waits for. */
export type TableLockMode =
  | 'access share'
  | 'row exclusive'
  | 'share'
  | 'share row exclusive'
  | 'access exclusive'

/** The lock modes each mode waits for (PostgreSQL's conflict table). */
const CONFLICTS: Record<TableLockMode, readonly string[]> = {
  'access share': ['AccessExclusiveLock'],
  'row exclusive': ['ShareLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock'],
  share: [
    'RowExclusiveLock',
    'ShareUpdateExclusiveLock',
    'ShareRowExclusiveLock',
    'ExclusiveLock',
    'AccessExclusiveLock',
  ],
  'share row exclusive': [
    'RowExclusiveLock',
    'ShareUpdateExclusiveLock',
    'ShareLock',
    'ShareRowExclusiveLock',
    'ExclusiveLock',
    'AccessExclusiveLock',
  ],
  'access exclusive': [
    'AccessShareLock',
    'RowShareLock',
    'RowExclusiveLock',
    'ShareUpdateExclusiveLock',
    'ShareLock',
    'ShareRowExclusiveLock',
    'ExclusiveLock',
    'AccessExclusiveLock',
  ],
}

/**
 * The lock modes (as `pg_locks.mode` names them) a `mode` lock waits for.
 *
 * @internal
 */
export function conflictingModes(mode: TableLockMode): readonly string[] {
  return CONFLICTS[mode]
}

/**
 * A query (one row, one text column or NULL) naming the sessions other than
 * this one that hold a lock on the tables, or on their partitions and
 * inheritance children, that a `mode` lock waits for: at most five, each as
 * `pid 123 (user app_name, state, in a transaction for 4.2 s)`, joined by `; `.
 * `tables` is an SQL expression of a `text[]` of table names (a parameter, or a
 * PL/pgSQL variable); a name that is no table is skipped.
 *
 * @internal
 * @example
 * ```ts
 * const { rows } = await db.query(`select (${lockHoldersSql('$1::text[]', 'access exclusive')}) as holders`, [['public.tenants']])
 * ```
 */
export function lockHoldersSql(tables: string, mode: TableLockMode): string {
  return `select pg_catalog.string_agg(h.who, '; ') from (
      select pg_catalog.format('pid %s (%s%s, %s%s)', a.pid, coalesce(a.usename, '?'),
               case when a.application_name <> '' then ' ' || a.application_name else '' end,
               coalesce(a.state, '?'),
               case when a.xact_start is not null
                    then ', in a transaction for ' || pg_catalog.round(extract(epoch from pg_catalog.clock_timestamp() - a.xact_start)::numeric, 1) || ' s'
                    else '' end) as who
        from pg_catalog.pg_stat_activity a
       where a.pid in (
               -- the tables and their partitions, from the catalog (pg_partition_tree would lock them)
               with recursive tree(relid) as (
                 select pg_catalog.to_regclass(t)::oid from pg_catalog.unnest(${tables}) t
                 union all
                 select i.inhrelid from pg_catalog.pg_inherits i join tree t on i.inhparent = t.relid)
               select l.pid from pg_catalog.pg_locks l
                where l.locktype = 'relation' and l.pid <> pg_catalog.pg_backend_pid()
                  -- relation oids repeat in other databases (a copy made from this one as a template)
                  and l.database = (select d.oid from pg_catalog.pg_database d where d.datname = pg_catalog.current_database())
                  and l.relation in (select t.relid from tree t)
                  and l.mode = any (${quoteLiteral(`{${CONFLICTS[mode].join(',')}}`)}::text[]))
       order by a.pid limit 5) h`
}
