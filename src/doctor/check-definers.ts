import { renderSealSetup } from '../schema/rls-sealed.js'
import type { Queryable } from '../sql/queryable.js'
import { searchPathNames } from '../sql/search-path-names.js'
import { stripSqlText } from '../sql/strip-sql-text.js'
import { type Finding, finding } from './findings.js'
import { type FunctionFacts, reachingByName, SQL_LANGUAGES } from './function-catalog.js'

/**
 * SECURITY DEFINER functions whose text doctor cannot read for the tables they reach, owned by
 * a role row level security does not bind (a superuser, a BYPASSRLS role, or the owner of a
 * tenant-aware table, who may switch it off), that the runtime role may call (all of them
 * without `runtimeRole`):
 *
 * - `SECURITY_DEFINER_DYNAMIC_SQL`: the function runs dynamic SQL (plpgsql `EXECUTE`,
 *   `query_to_xml`, `table_to_xml`, `ts_stat`, dblink, ...; in a SQL or plpgsql body, outside
 *   comments and string literals, `EXECUTE` where a statement starts), or calls a function that does,
 *   at any depth: the statement is built at run time, so no table name shows, and whatever
 *   part of it the caller controls reads any tenant's rows.
 * - `SECURITY_DEFINER_SEARCH_PATH`: the function resolves unqualified names on a path the
 *   caller shapes: no `search_path` pinned (`set search_path = pg_catalog, pg_temp`), or a
 *   pinned one that lists a schema the runtime role may create in (or one not there yet, when
 *   it may create schemas), or does not end with
 *   `pg_temp` (searched first for tables and types then). The caller's function, operator or
 *   temporary table (with a trigger) then runs as the owner. Trigger functions count when the
 *   runtime role may fire them: a trigger on a table it may write (or that a cascading foreign
 *   key writes from one), an enabled event trigger (any role runs some DDL). A SQL-standard body (`begin atomic`)
 *   binds its names when it is made, and the sealed binding's two functions qualify every
 *   name (their bodies are compared with rowtenancy's own): neither is reported.
 *
 * A function reported as `SECURITY_DEFINER_FUNCTION` (in `reported`) is not reported again:
 * its fix (security invoker) closes these too.
 *
 * @internal
 * @example
 * ```ts
 * const findings = await checkDefiners(pool, await readFunctions(pool, tables, 'app_runtime'), 'app_runtime', new Set())
 * ```
 */
export async function checkDefiners(
  db: Queryable,
  functions: readonly FunctionFacts[],
  runtimeRole: string | undefined,
  reported: ReadonlySet<string>,
): Promise<Finding[]> {
  const rows = functions.filter((f) => !OPAQUE_LANGUAGES.has(f.language))
  const path = await pathFacts(db, runtimeRole)
  const sealed = await sealedBodies(db)
  const dynamic = reachingByName(
    rows,
    rows.filter((r) => runsDynamicSql(r)),
  )
  const out: Finding[] = []
  for (const r of rows) {
    if (!r.definer || !r.ownerBypasses || reported.has(r.fn)) continue
    if (r.callable && !r.trigger && dynamic.has(r)) out.push(dynamicFinding(r))
    // a trigger function cannot be called, only fired
    const loose = (r.trigger ? r.fired : r.callable)
      ? searchPathProblem(r, path, sealed)
      : undefined
    if (loose) out.push(loose)
  }
  return out
}

/** Languages whose body is no text doctor can read (a C symbol, a built-in's name). */
const OPAQUE_LANGUAGES = new Set(['c', 'internal'])

/**
 * The functions that run a query or read a table given as text or regclass, dblink, and the
 * PL/Python and PL/Perl query calls.
 */
const DYNAMIC_CALL =
  /\b(query_to_xml(_and_xmlschema)?|query_to_xmlschema|(table|schema|database)_to_xml(_and_xmlschema)?|ts_stat|ts_rewrite|dblink(_exec|_open|_send_query)?|spi_exec_query|spi_query|spi_prepare)\s*\(|\bplpy\s*\.\s*(execute|cursor|prepare)\b/i

/**
 * plpgsql `EXECUTE` (also `RETURN QUERY EXECUTE`, `OPEN ... FOR EXECUTE`, `FOR ... IN EXECUTE`)
 * and SQL `EXECUTE` of a prepared statement: the word where a statement starts (the body's
 * start, after `;`, `begin`, `then`, `else`, `loop`) or after `query`, `for`, `in`. Not the
 * privilege (`grant execute`, `revoke grant option for execute`) nor a trigger's
 * `execute function`.
 */
const EXECUTE_STATEMENT =
  /(^|;|\b(begin|then|else|loop|query|in)\b|(?<!\boption\s+)\bfor\b)\s*execute\b(?!\s+(function|procedure)\b)/i

/** Any word `execute` (not `x.execute`, nor a trigger's `execute function`), for bodies doctor does not parse. */
const ANY_EXECUTE = /(^|[^a-z0-9_$.])execute\b(?!\s+(function|procedure)\b)/i

/**
 * The body runs SQL built at run time. SQL and plpgsql bodies are read without comments and
 * string literals (`raise notice 'nothing to execute'`, `has_function_privilege(f, 'EXECUTE')`
 * run nothing); other languages' bodies as they are, any `execute` counting.
 */
function runsDynamicSql(r: FunctionFacts): boolean {
  if (!SQL_LANGUAGES.has(r.language)) return ANY_EXECUTE.test(r.src) || DYNAMIC_CALL.test(r.src)
  const code = stripSqlText(r.src, { literals: true })
  return EXECUTE_STATEMENT.test(code) || DYNAMIC_CALL.test(code)
}

function dynamicFinding(r: FunctionFacts): Finding {
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
  /** CREATE on the database: a schema of its own, of any name not taken (and not `pg_*`). */
  readonly database: boolean
  /** The schemas that exist. */
  readonly existing: ReadonlySet<string>
}

async function pathFacts(db: Queryable, runtimeRole: string | undefined): Promise<PathFacts> {
  if (runtimeRole === undefined)
    return { known: false, temp: true, schemas: new Set(), database: false, existing: new Set() }
  const { rows } = await db.query(
    `select coalesce(has_database_privilege(r.oid, current_database(), 'TEMP'), false) as temp,
            coalesce(has_database_privilege(r.oid, current_database(), 'CREATE'), false) as database,
            coalesce((select array_agg(n.nspname::text) from pg_namespace n
                       where has_schema_privilege(r.oid, n.oid, 'CREATE')), '{}') as schemas,
            (select array_agg(n.nspname::text) from pg_namespace n) as existing
       from (select (select oid from pg_roles where rolname = $1::text) as oid) r`,
    [runtimeRole],
  )
  const r = rows[0] as { temp: boolean; database: boolean; schemas: string[]; existing: string[] }
  return {
    known: true,
    temp: r.temp,
    schemas: new Set(r.schemas),
    database: r.database,
    existing: new Set(r.existing),
  }
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
  r: FunctionFacts,
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
  const creatable = (n: string) => path.database && !path.existing.has(n) && !n.startsWith('pg_')
  const open = names.filter((n) => path.schemas.has(n) || creatable(n))
  const reasons = [
    ...(open.length > 0
      ? [
          `lists ${open.join(', ')}, where the runtime role may create objects, or a schema not there yet that it may create (its function, operator or table there is found)`,
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
