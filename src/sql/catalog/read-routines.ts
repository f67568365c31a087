import { type Queryable, selectRows } from '../queryable.js'
import { quoteIdent } from '../quote.js'
import { NOT_MIGRATION_TRIGGER } from './queries.js'

/**
 * A function of the template schema: its full definition (`pg_get_functiondef`),
 * and whether it runs as its owner.
 */
export interface FunctionDef {
  readonly name: string
  /** Its identity arguments (`pg_get_function_identity_arguments`), to name it in `ALTER FUNCTION`. */
  readonly signature: string
  /** `function` or `procedure`. */
  readonly kind: 'function' | 'procedure'
  readonly definition: string
  readonly securityDefiner: boolean
  /** Its arguments or result name a table's (or view's) row type (`RETURNS SETOF customer`): it can only be created after them. */
  readonly usesRowType: boolean
  /** Of those, a view's row type (`RETURNS SETOF customer_list`): it can only be created after the views. */
  readonly usesViewRowType: boolean
}

/** A trigger on a table of the template schema (`pg_get_triggerdef`: the table always schema-qualified). */
export interface TriggerDef {
  readonly name: string
  readonly table: string
  readonly definition: string
  /** Disabled in the template (`ALTER TABLE ... DISABLE TRIGGER`). */
  readonly disabled: boolean
}

/** A view of the template schema (`pg_get_viewdef`, the schema's own objects unqualified). */
export interface ViewDef {
  readonly name: string
  readonly definition: string
  readonly materialized: boolean
}

/**
 * A user-defined aggregate of the template schema (pagila's `group_concat`): its
 * `CREATE AGGREGATE` statement, or undefined for a kind not carried over (ordered-set,
 * moving-aggregate or sort-operator aggregates).
 */
export interface AggregateDef {
  readonly name: string
  readonly signature: string
  readonly definition: string | undefined
}

/**
 * The functions, triggers and views of one schema.
 */
export interface TemplateRoutines {
  readonly schema: string
  /** `quote_ident(schema)` as the server prints it inside definitions. */
  readonly quotedSchema: string
  readonly functions: readonly FunctionDef[]
  readonly aggregates: readonly AggregateDef[]
  readonly triggers: readonly TriggerDef[]
  readonly views: readonly ViewDef[]
}

const FUNCTIONS = `
select p.proname as name, pg_get_function_identity_arguments(p.oid) as signature,
       case p.prokind when 'p' then 'procedure' else 'function' end as kind,
       pg_get_functiondef(p.oid) as definition, p.prosecdef as security_definer,
       exists (select 1 from pg_depend d join pg_type t on t.oid = d.refobjid
                 left join pg_type e on e.oid = t.typelem
                 join pg_class c on c.oid = coalesce(nullif(t.typrelid, 0), e.typrelid)
                where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.refclassid = 'pg_type'::regclass
                  and c.relkind <> 'c') as uses_row_type,
       exists (select 1 from pg_depend d join pg_type t on t.oid = d.refobjid
                 left join pg_type e on e.oid = t.typelem
                 join pg_class c on c.oid = coalesce(nullif(t.typrelid, 0), e.typrelid)
                where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.refclassid = 'pg_type'::regclass
                  and c.relkind in ('v', 'm')) as uses_view_row_type
  from pg_proc p join pg_namespace n on n.oid = p.pronamespace
 where n.nspname = $1 and p.prokind in ('f', 'p')
   and not exists (select 1 from pg_depend d where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype in ('e', 'i'))
 order by p.oid`

// Support functions print unqualified when in the schema (it is first on the search_path), so
// they resolve in the target; the aggregate's own name is qualified, and rewritten like a function's.
const AGGREGATES = `
select p.proname as name, pg_get_function_identity_arguments(p.oid) as signature,
       case when a.aggkind = 'n' and a.aggmtransfn = 0 and a.aggsortop = 0 then
         format('CREATE AGGREGATE %s.%s(%s) (SFUNC = %s, STYPE = %s', quote_ident(n.nspname), quote_ident(p.proname),
                pg_get_function_identity_arguments(p.oid), a.aggtransfn::regproc, format_type(a.aggtranstype, null))
         || case when a.aggtransspace <> 0 then ', SSPACE = ' || a.aggtransspace else '' end
         || case when a.aggfinalfn <> 0 then ', FINALFUNC = ' || a.aggfinalfn::regproc::text else '' end
         || case when a.aggfinalextra then ', FINALFUNC_EXTRA' else '' end
         || case when a.aggfinalfn <> 0 and a.aggfinalmodify <> 'r'
                 then ', FINALFUNC_MODIFY = ' || case a.aggfinalmodify when 's' then 'SHAREABLE' else 'READ_WRITE' end
                 else '' end
         || case when a.aggcombinefn <> 0 then ', COMBINEFUNC = ' || a.aggcombinefn::regproc::text else '' end
         || case when a.aggserialfn <> 0 then ', SERIALFUNC = ' || a.aggserialfn::regproc::text else '' end
         || case when a.aggdeserialfn <> 0 then ', DESERIALFUNC = ' || a.aggdeserialfn::regproc::text else '' end
         || case when a.agginitval is not null then ', INITCOND = ' || quote_literal(a.agginitval) else '' end
         || case p.proparallel when 's' then ', PARALLEL = SAFE' when 'r' then ', PARALLEL = RESTRICTED' else '' end
         || ')'
       end as definition
  from pg_proc p join pg_aggregate a on a.aggfnoid = p.oid join pg_namespace n on n.oid = p.pronamespace
 where n.nspname = $1 and p.prokind = 'a'
   and not exists (select 1 from pg_depend d where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype in ('e', 'i'))
 order by p.oid`

const TRIGGERS = `
select g.tgname as name, c.relname as table, pg_get_triggerdef(g.oid) as definition, g.tgenabled = 'D' as disabled
  from pg_trigger g join pg_class c on c.oid = g.tgrelid join pg_namespace n on n.oid = c.relnamespace
 where n.nspname = $1 and not g.tgisinternal and not c.relispartition
   and coalesce((to_jsonb(g) ->> 'tgparentid')::oid, 0) = 0 and ${NOT_MIGRATION_TRIGGER}
 order by c.relname collate "C", g.tgname collate "C"`

const VIEWS = `
select c.relname as name, pg_get_viewdef(c.oid) as definition, c.relkind = 'm' as materialized
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
 where n.nspname = $1 and c.relkind in ('v', 'm')
 order by c.oid`

/**
 * Reads the functions, triggers and views of `schema`, inside the caller's
 * transaction, whose `search_path` it sets to `schema, pg_catalog` for the rest
 * of it: triggers and views then name the schema's own objects unqualified;
 * function definitions always name their schema (rewritten when rendered). Functions that belong to an extension are
 * left out.
 *
 * @example
 * ```ts
 * const routines = await inTransaction(pool, (tx) => readRoutinesInTransaction(tx, 'tenant_1'))
 * ```
 */
export async function readRoutinesInTransaction(
  tx: Queryable,
  schema: string,
): Promise<TemplateRoutines> {
  const quoted = await selectRows<{ q: string }>(
    tx,
    "select quote_ident($1) as q, set_config('search_path', quote_ident($1) || ', pg_catalog', true)",
    [schema],
  )
  const functions = await selectRows<{
    name: string
    signature: string
    kind: 'function' | 'procedure'
    definition: string
    security_definer: boolean
    uses_row_type: boolean
    uses_view_row_type: boolean
  }>(tx, FUNCTIONS, [schema])
  const aggregates = await selectRows<{
    name: string
    signature: string
    definition: string | null
  }>(tx, AGGREGATES, [schema])
  const triggers = await selectRows<{
    name: string
    table: string
    definition: string
    disabled: boolean
  }>(tx, TRIGGERS, [schema])
  const views = await selectRows<{ name: string; definition: string; materialized: boolean }>(
    tx,
    VIEWS,
    [schema],
  )
  return {
    schema,
    quotedSchema: quoted[0]!.q,
    functions: functions.map((f) => ({
      name: f.name,
      signature: f.signature,
      kind: f.kind,
      definition: f.definition,
      securityDefiner: f.security_definer,
      usesRowType: f.uses_row_type,
      usesViewRowType: f.uses_view_row_type,
    })),
    aggregates: aggregates.map((a) => ({
      name: a.name,
      signature: a.signature,
      definition: a.definition ?? undefined,
    })),
    triggers,
    views,
  }
}

const DEFINITIONS = `
select n.nspname as schema, quote_ident(n.nspname) as q_schema, 'function' as kind,
       p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')' as name,
       pg_get_functiondef(p.oid) as definition
  from pg_proc p join pg_namespace n on n.oid = p.pronamespace
 where n.nspname = any($1::text[]) and p.prokind in ('f', 'p')
   and not exists (select 1 from pg_depend d where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype in ('e', 'i'))
union all
select n.nspname, quote_ident(n.nspname), case c.relkind when 'm' then 'materialized view' else 'view' end,
       c.relname, pg_get_viewdef(c.oid)
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
 where n.nspname = any($1::text[]) and c.relkind in ('v', 'm')
union all
select n.nspname, quote_ident(n.nspname), 'trigger', g.tgname || ' on ' || c.relname, pg_get_triggerdef(g.oid)
  from pg_trigger g join pg_class c on c.oid = g.tgrelid join pg_namespace n on n.oid = c.relnamespace
 where n.nspname = any($1::text[]) and not g.tgisinternal and not c.relispartition
   and coalesce((to_jsonb(g) ->> 'tgparentid')::oid, 0) = 0 and ${NOT_MIGRATION_TRIGGER}`

/**
 * The functions, views and triggers of each schema, by `<kind> <name>` (a trigger:
 * `trigger <name> on <table>`), their definitions
 * with the schema's own name left out (`"tenant 1".film` reads `film`), so that
 * two schemas' definitions compare. One query however many schemas.
 *
 * @example
 * ```ts
 * const defs = await routineDefinitions(pool, ['tenant_1', 'public'])
 * defs.get('tenant_1')?.get('function film_count(lang integer)')
 * ```
 */
export async function routineDefinitions(
  db: Queryable,
  schemas: readonly string[],
): Promise<Map<string, Map<string, string>>> {
  const out = new Map<string, Map<string, string>>(schemas.map((s) => [s, new Map()]))
  if (schemas.length === 0) return out
  const rows = await selectRows<{
    schema: string
    q_schema: string
    kind: string
    name: string
    definition: string
  }>(db, DEFINITIONS, [schemas])
  for (const r of rows) {
    // Both spellings of the schema: as the server quotes it, and always quoted (as written).
    const definition = r.definition
      .split(`${r.q_schema}.`)
      .join('')
      .split(`${quoteIdent(r.schema)}.`)
      .join('')
    const name = r.name
      .split(`${r.q_schema}.`)
      .join('')
      .split(`${quoteIdent(r.schema)}.`)
      .join('')
    out.get(r.schema)?.set(`${r.kind} ${name}`, definition)
  }
  return out
}
