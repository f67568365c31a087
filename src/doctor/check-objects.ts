import type { TableFacts } from '../sql/catalog/index.js'
import type { Queryable } from '../sql/queryable.js'
import { securityInvoker } from '../sql/reloptions.js'
import { type Finding, finding } from './findings.js'
import { type FunctionFacts, mentionPattern, reachingByName } from './function-catalog.js'

/**
 * Views over tenant-aware tables, directly or through other views, must be
 * `security_invoker`: a plain view runs with its owner's rights, and the owner is
 * not bound by RLS, so the view shows every tenant's rows to whoever may select
 * from it; a materialized view stores them.
 *
 * @internal
 * @example
 * ```ts
 * const findings = await checkViews(pool, tables)
 * ```
 */
export async function checkViews(db: Queryable, tables: readonly TableFacts[]): Promise<Finding[]> {
  // Views at any depth: a materialized view over a security_invoker view over a tenant table
  // stores every tenant's rows as much as one over the table itself.
  const rows = await viewsOver(db, tables)
  return rows
    .filter((r) => r.materialized || !r.invoker)
    .map((r) =>
      r.materialized
        ? finding(
            'VIEW_WITHOUT_SECURITY_INVOKER',
            r.view,
            "A materialized view over tenant-aware tables stores every tenant's rows and has no row level security.",
            `Replace it with a security_invoker view, or a tenant-aware table refreshed per tenant; revoke it from the runtime role meanwhile (revoke all on ${r.quoted} from <runtime role>).`,
          )
        : finding(
            'VIEW_WITHOUT_SECURITY_INVOKER',
            r.view,
            "The view reads tenant-aware tables with its owner's rights, bypassing row level security.",
            `alter view ${r.quoted} set (security_invoker = true)  -- PostgreSQL 15+`,
          ),
    )
}

/** A view or materialized view over tenant-aware tables, at any depth. */
interface ViewOver {
  readonly oid: number
  readonly name: string
  readonly view: string
  readonly quoted: string
  readonly materialized: boolean
  readonly invoker: boolean
}

/**
 * The CTE `over`: the relations with oids in `$1` and every view and
 * materialized view that reads them, directly or through other views (a view's
 * `_RETURN` rule depends on what it reads).
 */
const OVER_TABLES = `with recursive over (oid) as (
       select unnest($1::oid[])
       union
       select v.oid
         from over
         join pg_depend d on d.refclassid = 'pg_class'::regclass and d.refobjid = over.oid
         join pg_rewrite r on r.oid = d.objid and d.classid = 'pg_rewrite'::regclass
         join pg_class v on v.oid = r.ev_class and v.relkind in ('v', 'm')
        where r.rulename = '_RETURN' and v.oid <> over.oid)`

/** Views and materialized views over `tables`, directly or through other views. */
async function viewsOver(db: Queryable, tables: readonly TableFacts[]): Promise<ViewOver[]> {
  const { rows } = await db.query(
    `${OVER_TABLES}
     select distinct v.oid::int as oid, v.relname as name, format('%s.%s', vn.nspname, v.relname) as view, format('%I.%I', vn.nspname, v.relname) as quoted,
            v.relkind = 'm' as materialized,
            ${securityInvoker('v')} as invoker
       from over join pg_class v on v.oid = over.oid and v.relkind in ('v', 'm')
       join pg_namespace vn on vn.oid = v.relnamespace
      order by 2`,
    [tables.map((t) => t.oid)],
  )
  return rows as ViewOver[]
}

/**
 * Rules (other than a view's own `_RETURN`) whose actions reach tenant-aware tables,
 * directly or through views over them: PostgreSQL runs a rule's actions with the
 * rights of its relation's owner, so a rule on any table or view (a shared table, a
 * `security_invoker` view) reads or writes every tenant's rows for whoever fires it.
 *
 * @internal
 * @example
 * ```ts
 * const findings = await checkRules(pool, tables)
 * ```
 */
export async function checkRules(db: Queryable, tables: readonly TableFacts[]): Promise<Finding[]> {
  const { rows } = await db.query(
    `${OVER_TABLES}
     select distinct format('%s.%s.%s', n.nspname, c.relname, r.rulename) as rule,
            format('%I on %I.%I', r.rulename, n.nspname, c.relname) as quoted
       from pg_rewrite r
       join pg_class c on c.oid = r.ev_class
       join pg_namespace n on n.oid = c.relnamespace
       join pg_depend d on d.classid = 'pg_rewrite'::regclass and d.objid = r.oid
                       and d.refclassid = 'pg_class'::regclass and d.deptype = 'n'
      where r.rulename <> '_RETURN' and d.refobjid in (select oid from over)
      order by 1`,
    [tables.map((t) => t.oid)],
  )
  return (rows as { rule: string; quoted: string }[]).map((r) =>
    finding(
      'RULE_OVER_TENANT_TABLE',
      r.rule,
      "A rule's actions reach tenant-aware tables with its relation owner's rights, bypassing row level security.",
      `drop rule ${r.quoted}  -- use a trigger (security invoker) instead`,
    ),
  )
}

/**
 * SECURITY DEFINER functions that reach tenant-aware tables: naming one, or a view
 * over one, in their body (or depending on it through a SQL-standard body), or
 * calling a function that does, at any depth. They run as their owner, who
 * bypasses RLS, and so does every function and `security_invoker` view they call,
 * so a caller reaches every tenant's rows through them.
 *
 * @internal
 * @example
 * ```ts
 * const findings = await checkFunctions(pool, tables, await readFunctions(pool, tables, undefined))
 * ```
 */
export async function checkFunctions(
  db: Queryable,
  tables: readonly TableFacts[],
  functions: readonly FunctionFacts[],
): Promise<Finding[]> {
  const views = await viewsOver(db, tables)
  const over = new Set([...tables, ...views].map((r) => String(r.oid)))
  const mentions = [...tables.map((t) => t.name), ...views.map((v) => v.name)].map((name) =>
    mentionPattern(name, '($|[^a-z0-9_$"])'),
  )
  const reaching = reachingByName(
    functions,
    functions.filter(
      (f) => f.dependsOn.some((o) => over.has(o)) || mentions.some((m) => m.test(f.code)),
    ),
  )
  return functions
    .filter((r) => r.definer && reaching.has(r))
    .map((r) =>
      finding(
        'SECURITY_DEFINER_FUNCTION',
        r.fn,
        "A SECURITY DEFINER function reads or writes tenant-aware tables with its owner's rights, bypassing row level security.",
        `alter function ${r.quoted} security invoker  -- or bind and check the tenant inside it`,
      ),
    )
}

/**
 * Foreign tables with the tenant column (a foreign partition of a tenant-aware table among
 * them): row level security cannot be enabled on a foreign table, so whoever may read or write
 * one reaches every tenant's rows behind it, as the remote side's user. With `runtimeRole`,
 * those the role has a privilege on; without, all of them.
 *
 * @internal
 * @example
 * ```ts
 * const findings = await checkForeignTables(pool, 'tenant_id', 'app_runtime')
 * ```
 */
export async function checkForeignTables(
  db: Queryable,
  tenantColumn: string,
  runtimeRole: string | undefined,
): Promise<Finding[]> {
  const { rows } = await db.query(
    `select format('%s.%s', n.nspname, c.relname) as name, format('%I.%I', n.nspname, c.relname) as quoted
       from pg_catalog.pg_class c
       join pg_catalog.pg_namespace n on n.oid = c.relnamespace
       join pg_catalog.pg_attribute a on a.attrelid = c.oid and a.attname = $1 and a.attnum > 0
                                     and not a.attisdropped
       left join pg_catalog.pg_roles r on r.rolname = $2::text
      where c.relkind = 'f'
        and coalesce(pg_catalog.has_table_privilege(r.oid, c.oid, 'DELETE')
                     or pg_catalog.has_any_column_privilege(r.oid, c.oid, 'SELECT, INSERT, UPDATE'), true)
      order by 1`,
    [tenantColumn, runtimeRole ?? null],
  )
  return (rows as { name: string; quoted: string }[]).map((r) =>
    finding(
      'FOREIGN_TABLE_WITH_TENANT_COLUMN',
      r.name,
      "A foreign table with the tenant column: row level security cannot be enabled on it, so whoever may read or write it reaches every tenant's rows behind it.",
      `revoke all on ${r.quoted} from <runtime role>, public  -- keep foreign tables to the owner (and out of tenant-aware partitions)`,
    ),
  )
}
