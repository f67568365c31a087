import { renderSealSetup } from '../schema/rls-sealed.js'
import type { TableFacts } from '../sql/catalog/index.js'
import type { Queryable } from '../sql/queryable.js'
import { escapeRegExp } from '../sql/regexp.js'
import { searchPathNames } from '../sql/search-path-names.js'
import { type Finding, finding } from './findings.js'

/**
 * SECURITY DEFINER functions whose text doctor cannot read for the tables they reach, owned by
 * a role row level security does not bind (a superuser, a BYPASSRLS role, or the owner of a
 * tenant-aware table, who may switch it off), that the runtime role may call (all of them
 * without `runtimeRole`):
 *
 * - `SECURITY_DEFINER_DYNAMIC_SQL`: the function runs dynamic SQL (plpgsql `EXECUTE`,
 *   `query_to_xml`, `table_to_xml`, `ts_stat`, dblink, ...), or calls a function that does,
 *   at any depth: the statement is built at run time, so no table name shows, and whatever
 *   part of it the caller controls reads any tenant's rows.
 * - `SECURITY_DEFINER_SEARCH_PATH`: the function resolves unqualified names on a path the
 *   caller shapes: no `search_path` pinned (`set search_path = pg_catalog, pg_temp`), or a
 *   pinned one that lists a schema the runtime role may create in, or does not end with
 *   `pg_temp` (searched first for tables and types then). The caller's function, operator or
 *   temporary table (with a trigger) then runs as the owner. Trigger functions count whoever
 *   may call them: the runtime role fires them by writing. A SQL-standard body (`begin atomic`)
 *   binds its names when it is made, and the sealed binding's two functions qualify every
 *   name (their bodies are compared with rowtenancy's own): neither is reported.
 *
 * A function reported as `SECURITY_DEFINER_FUNCTION` (in `reported`) is not reported again:
 * its fix (security invoker) closes these too.
 *
 * @internal
 * @example
 * ```ts
 * const findings = await checkDefiners(pool, tables, 'app_runtime', new Set())
 * ```
 */
export async function checkDefiners(
  db: Queryable,
  tables: readonly TableFacts[],
  runtimeRole: string | undefined,
  reported: ReadonlySet<string>,
): Promise<Finding[]> {
  const rows = await definerCandidates(db, tables, runtimeRole)
  const path = await pathFacts(db, runtimeRole)
  const sealed = await sealedBodies(db)
  const dynamic = reachingDynamicSql(rows)
  const out: Finding[] = []
  for (const r of rows) {
    if (!r.definer || !r.ownerBypasses || reported.has(r.fn)) continue
    if (r.callable && !r.trigger && dynamic.has(r)) out.push(dynamicFinding(r))
    const loose = r.callable || r.trigger ? searchPathProblem(r, path, sealed) : undefined
    if (loose) out.push(loose)
  }
  return out
}

/** A function of the database's own schemas (not an extension's), with what the checks need. */
interface FunctionRow {
  readonly name: string
  readonly fn: string
  readonly quoted: string
  readonly owner: string
  readonly language: string
  /** The body; for a SQL-standard body (`begin atomic`), the whole definition. */
  readonly src: string
  readonly atomic: boolean
  readonly definer: boolean
  readonly trigger: boolean
  readonly ownerBypasses: boolean
  /** The runtime role may execute it (true without a runtime role). */
  readonly callable: boolean
  /** The pinned `search_path` setting, or null. */
  readonly searchPath: string | null
}

async function definerCandidates(
  db: Queryable,
  tables: readonly TableFacts[],
  runtimeRole: string | undefined,
): Promise<FunctionRow[]> {
  const { rows } = await db.query(
    `select p.proname as name,
            format('%s.%s(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)) as fn,
            format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)) as quoted,
            o.rolname as owner, l.lanname as language, p.prosecdef as definer,
            l.lanname = 'sql' and p.prosrc = '' as atomic,
            case when l.lanname = 'sql' and p.prosrc = '' then pg_get_functiondef(p.oid)
                 else coalesce(p.prosrc, '') end as src,
            p.prorettype in ('pg_catalog.trigger'::regtype, 'pg_catalog.event_trigger'::regtype) as trigger,
            o.rolsuper or o.rolbypassrls
              or exists (select 1 from pg_class c where c.oid = any($1::oid[])
                           and pg_has_role(p.proowner, c.relowner, 'USAGE')) as "ownerBypasses",
            r.oid is null or (has_function_privilege(r.oid, p.oid, 'EXECUTE')
                              and has_schema_privilege(r.oid, p.pronamespace, 'USAGE')) as callable,
            (select substr(c, length('search_path=') + 1) from unnest(p.proconfig) c
              where c like 'search\\_path=%') as "searchPath"
       from pg_proc p
       join pg_namespace n on n.oid = p.pronamespace
       join pg_language l on l.oid = p.prolang
       join pg_roles o on o.oid = p.proowner
       left join pg_roles r on r.rolname = $2::text
      where n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_%'
        and p.prokind in ('f', 'p') and l.lanname not in ('c', 'internal')
        and not exists (select 1 from pg_depend e where e.classid = 'pg_proc'::regclass
                          and e.objid = p.oid and e.deptype = 'e')
      order by 2`,
    [tables.map((t) => t.oid), runtimeRole ?? null],
  )
  return rows as FunctionRow[]
}

/**
 * Statements that run SQL built at run time: plpgsql `EXECUTE` (also `RETURN QUERY EXECUTE`,
 * `OPEN ... FOR EXECUTE`, `FOR ... IN EXECUTE`), SQL `EXECUTE` of a prepared statement, the
 * functions that run a query or read a table given as text or regclass, dblink, and the
 * PL/Python and PL/Perl query calls.
 */
const DYNAMIC_SQL = new RegExp(
  [
    '(^|[^a-z0-9_$.])execute\\b(?!\\s+(function|procedure)\\b)',
    '\\b(query_to_xml(_and_xmlschema)?|query_to_xmlschema|(table|schema|database)_to_xml(_and_xmlschema)?|ts_stat|ts_rewrite|dblink(_exec|_open|_send_query)?|spi_exec_query|spi_query|spi_prepare)\\s*\\(',
    '\\bplpy\\s*\\.\\s*(execute|cursor|prepare)\\b',
  ].join('|'),
  'i',
)

/** The text of a body without its comments (a comment saying "execute" runs nothing). */
function code(src: string): string {
  return src.replace(/\/\*[\s\S]*?\*\//g, ' ').replace(/--[^\n]*/g, ' ')
}

/** Functions that run dynamic SQL, or call (by name, overloads alike) one that does, at any depth. */
function reachingDynamicSql(rows: readonly FunctionRow[]): Set<FunctionRow> {
  const reaching = new Set(rows.filter((r) => DYNAMIC_SQL.test(code(r.src))))
  for (let grew = true; grew; ) {
    grew = false
    const calls = [...new Set([...reaching].map((r) => r.name))].map(
      (name) => new RegExp(`(^|[^a-z0-9_$"])"?${escapeRegExp(name)}"?\\s*\\(`, 'i'),
    )
    for (const r of rows) {
      if (reaching.has(r) || !calls.some((c) => c.test(code(r.src)))) continue
      reaching.add(r)
      grew = true
    }
  }
  return reaching
}

function dynamicFinding(r: FunctionRow): Finding {
  return finding(
    'SECURITY_DEFINER_DYNAMIC_SQL',
    r.fn,
    `A SECURITY DEFINER function runs dynamic SQL (EXECUTE, query_to_xml, ...), itself or through a function it calls, as ${r.owner}, ` +
      'whom row level security does not bind: the statement is built at run time, so no check sees the tables it reads, ' +
      "and a caller who shapes any part of it (a table name, a query) reads every tenant's rows.",
    `alter function ${r.quoted} security invoker  -- or revoke execute on function ${r.quoted} from public, <runtime role>; or build the statement from constants only, bind and check the tenant inside it`,
  )
}

/** What the runtime role may create: temporary tables, objects in which schemas (unknown without a role). */
interface PathFacts {
  readonly known: boolean
  readonly temp: boolean
  readonly schemas: ReadonlySet<string>
  /** CREATE on the database: a schema of its own (not on a pinned path unless named). */
  readonly database: boolean
}

async function pathFacts(db: Queryable, runtimeRole: string | undefined): Promise<PathFacts> {
  if (runtimeRole === undefined)
    return { known: false, temp: true, schemas: new Set(), database: false }
  const { rows } = await db.query(
    `select coalesce(has_database_privilege(r.oid, current_database(), 'TEMP'), false) as temp,
            coalesce(has_database_privilege(r.oid, current_database(), 'CREATE'), false) as database,
            coalesce((select array_agg(n.nspname::text) from pg_namespace n
                       where has_schema_privilege(r.oid, n.oid, 'CREATE')), '{}') as schemas
       from (select (select oid from pg_roles where rolname = $1::text) as oid) r`,
    [runtimeRole],
  )
  const r = rows[0] as { temp: boolean; database: boolean; schemas: string[] }
  return { known: true, temp: r.temp, schemas: new Set(r.schemas), database: r.database }
}

/** The bodies of the sealed binding's functions, as rowtenancy installs them (pgcrypto's schema). */
async function sealedBodies(db: Queryable): Promise<ReadonlySet<string>> {
  const { rows } = await db.query(
    `select n.nspname as schema from pg_extension e join pg_namespace n on n.oid = e.extnamespace
      where e.extname = 'pgcrypto'`,
  )
  if (rows.length === 0) return new Set()
  return new Set(
    renderSealSetup(rows[0].schema as string).flatMap((s) => {
      const body = /\$fn\$([\s\S]*)\$fn\$/.exec(s)?.[1]
      return body === undefined ? [] : [body]
    }),
  )
}

/** Why the function's names resolve on a path the runtime role shapes, as a finding; else undefined. */
function searchPathProblem(
  r: FunctionRow,
  path: PathFacts,
  sealed: ReadonlySet<string>,
): Finding | undefined {
  if (r.atomic || sealed.has(r.src)) return undefined
  const canCreate = path.temp || path.database || path.schemas.size > 0
  const fix = `alter function ${r.quoted} set search_path = pg_catalog, pg_temp  -- then qualify every other name (public.t), or give it a SQL-standard body (begin atomic)`
  const runs = `runs as ${r.owner}, whom row level security does not bind: `
  if (r.searchPath === null) {
    return finding(
      'SECURITY_DEFINER_SEARCH_PATH',
      r.fn,
      `A SECURITY DEFINER function has no pinned search_path: its unqualified names resolve on the caller's path, and it ${runs}` +
        'a caller who may create objects (a function or operator in a schema it puts before pg_catalog, a temporary table with a trigger) ' +
        "has its own code run with those rights and reads every tenant's rows" +
        (path.known
          ? canCreate
            ? ' (the runtime role may create such objects).'
            : ' (the runtime role may create no such object now).'
          : '.'),
      fix,
      path.known && canCreate ? 'error' : 'warning',
    )
  }
  const names = searchPathNames(r.searchPath)
    .map((n) => (n === '$user' ? r.owner : n))
    .filter((n) => n !== '')
  const open = names.filter((n) => path.schemas.has(n))
  const reasons = [
    ...(open.length > 0
      ? [
          `lists ${open.join(', ')}, where the runtime role may create objects (its function, operator or table there is found)`,
        ]
      : []),
    ...(names.at(-1) !== 'pg_temp' && path.temp
      ? [
          "does not end with pg_temp, so pg_temp is searched first for tables (a caller's temporary table, with a trigger, named like one the function uses is found instead)",
        ]
      : []),
  ]
  if (reasons.length === 0) return undefined
  return finding(
    'SECURITY_DEFINER_SEARCH_PATH',
    r.fn,
    `A SECURITY DEFINER function's pinned search_path (${r.searchPath}) ${reasons.join('; and it ')}; ` +
      `the function ${runs}the caller's code reads every tenant's rows.`,
    fix,
    path.known ? 'error' : 'warning',
  )
}
