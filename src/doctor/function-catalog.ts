import type { TableFacts } from '../sql/catalog/index.js'
import type { Queryable } from '../sql/queryable.js'
import { escapeRegExp } from '../sql/regexp.js'
import { stripSqlText } from '../sql/strip-sql-text.js'

/**
 * A function or procedure of the database's own schemas (not an extension's, nor pg_catalog's),
 * with what doctor's function checks need.
 *
 * @internal
 */
export interface FunctionFacts {
  readonly name: string
  /** `schema.name(identity arguments)`, as reported. */
  readonly fn: string
  readonly quoted: string
  readonly owner: string
  readonly language: string
  /** The body (`prosrc`); for a SQL-standard body (`begin atomic`), that part of its definition. */
  readonly src: string
  /** The body without comments, for the languages whose comments doctor knows (sql, plpgsql). */
  readonly code: string
  readonly atomic: boolean
  readonly definer: boolean
  /** Returns `trigger` or `event_trigger`. */
  readonly trigger: boolean
  readonly ownerBypasses: boolean
  /** The runtime role may execute it (true without a runtime role). */
  readonly callable: boolean
  /**
   * A trigger function the runtime role may fire (any trigger function without a runtime role): a trigger attached to a table it
   * may write (INSERT, UPDATE, DELETE, TRUNCATE, a column's INSERT or UPDATE, with USAGE on the
   * table's schema), or that a foreign key's cascading action writes from one it may; an event
   * trigger function used by an enabled event trigger (any role runs some DDL: `alter default
   * privileges` for its own objects needs no privilege and fires `ddl_command_start`). False
   * for other functions.
   */
  readonly fired: boolean
  /** The pinned `search_path` setting, or null. */
  readonly searchPath: string | null
  /** The relations (oids) its definition depends on (a SQL-standard body's). */
  readonly dependsOn: readonly string[]
}

/** The runtime role (`r.oid`) may write the relation: fire its triggers. */
const WRITABLE = (rel: string, schema: string) =>
  `(has_schema_privilege(r.oid, ${schema}, 'USAGE')
    and (has_table_privilege(r.oid, ${rel}, 'INSERT, UPDATE, DELETE, TRUNCATE')
         or has_any_column_privilege(r.oid, ${rel}, 'INSERT, UPDATE')))`

/**
 * The languages whose bodies `stripSqlText` reads right (a PL/Perl `$x--` is no comment).
 *
 * @internal
 */
export const SQL_LANGUAGES = new Set(['sql', 'plpgsql'])

/**
 * Every function and procedure outside pg_catalog, information_schema, pg_* schemas and
 * extensions, in reported-name order: one read of the function catalog for doctor's checks.
 * `tables` are the tenant-aware tables (whose owners bypass row level security).
 *
 * @internal
 * @example
 * ```ts
 * const functions = await readFunctions(pool, tables, 'app_runtime')
 * ```
 */
export async function readFunctions(
  db: Queryable,
  tables: readonly TableFacts[],
  runtimeRole: string | undefined,
): Promise<FunctionFacts[]> {
  const { rows } = await db.query(
    `select p.proname as name,
            format('%s.%s(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)) as fn,
            format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)) as quoted,
            o.rolname as owner, l.lanname as language, p.prosecdef as definer,
            l.lanname = 'sql' and p.prosrc = '' as atomic,
            case when l.lanname = 'sql' and p.prosrc = ''
                 then coalesce(substring(pg_get_functiondef(p.oid) from 'BEGIN ATOMIC.*$'), '')
                 else coalesce(p.prosrc, '') end as src,
            p.prorettype in ('pg_catalog.trigger'::regtype, 'pg_catalog.event_trigger'::regtype) as trigger,
            o.rolsuper or o.rolbypassrls
              or exists (select 1 from pg_class c where c.oid = any($1::oid[])
                           and pg_has_role(p.proowner, c.relowner, 'USAGE')) as "ownerBypasses",
            r.oid is null or (has_function_privilege(r.oid, p.oid, 'EXECUTE')
                              and has_schema_privilege(r.oid, p.pronamespace, 'USAGE')) as callable,
            p.prorettype in ('pg_catalog.trigger'::regtype, 'pg_catalog.event_trigger'::regtype)
            and (r.oid is null
              or exists (select 1 from pg_trigger t join pg_class c on c.oid = t.tgrelid
                          where t.tgfoid = p.oid and t.tgenabled <> 'D'
                            and (${WRITABLE('c.oid', 'c.relnamespace')}
                                 or exists (select 1 from pg_constraint k join pg_class f on f.oid = k.confrelid
                                             where k.contype = 'f' and k.conrelid = c.oid
                                               and (k.confdeltype in ('c', 'n', 'd') or k.confupdtype in ('c', 'n', 'd'))
                                               and ${WRITABLE('f.oid', 'f.relnamespace')})))
              or exists (select 1 from pg_event_trigger e where e.evtfoid = p.oid and e.evtenabled <> 'D'))
              as fired,
            (select substr(c, length('search_path=') + 1) from unnest(p.proconfig) c
              where c like 'search\\_path=%') as "searchPath",
            array(select d.refobjid::int8::text from pg_depend d
                   where d.classid = 'pg_proc'::regclass and d.objid = p.oid
                     and d.refclassid = 'pg_class'::regclass) as "dependsOn"
       from pg_proc p
       join pg_namespace n on n.oid = p.pronamespace
       join pg_language l on l.oid = p.prolang
       join pg_roles o on o.oid = p.proowner
       left join pg_roles r on r.rolname = $2::text
      where n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_%'
        and not exists (select 1 from pg_depend e where e.classid = 'pg_proc'::regclass
                          and e.objid = p.oid and e.deptype = 'e')
      order by 2`,
    [tables.map((t) => t.oid), runtimeRole ?? null],
  )
  return (rows as Omit<FunctionFacts, 'code'>[]).map((r) =>
    Object.freeze({
      ...r,
      code: SQL_LANGUAGES.has(r.language) ? stripSqlText(r.src, { literals: false }) : r.src,
    }),
  )
}

/**
 * The functions in `seed`, and those that call one of them by name (overloads alike, a quoted
 * name too) in their body without comments, at any depth. A call inside a string literal counts
 * (`execute 'select f()'` calls `f`).
 *
 * @internal
 * @example
 * ```ts
 * const reaching = reachingByName(functions, functions.filter((f) => f.name === 'leak'))
 * ```
 */
export function reachingByName(
  functions: readonly FunctionFacts[],
  seed: Iterable<FunctionFacts>,
): Set<FunctionFacts> {
  const reaching = new Set(seed)
  for (let grew = true; grew; ) {
    grew = false
    const calls = [...new Set([...reaching].map((f) => f.name))].map((name) =>
      mentionPattern(name, '\\s*\\('),
    )
    for (const f of functions) {
      if (reaching.has(f) || !calls.some((c) => c.test(f.code))) continue
      reaching.add(f)
      grew = true
    }
  }
  return reaching
}

/** `name` as a word of its own (or double-quoted), followed by `after`. */
export function mentionPattern(name: string, after: string): RegExp {
  return new RegExp(`(^|[^a-z0-9_$"])"?${escapeRegExp(name)}"?${after}`, 'i')
}
