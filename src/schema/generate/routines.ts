import type { TemplateRoutines } from '../../sql/catalog/read-routines.js'
import { quoteIdent, quoteQualified } from '../../sql/quote.js'

/**
 * The statements that carry the template's functions, views and triggers over
 * to the target schema, and notes on what changed or was left out.
 */
export interface RenderedRoutines {
  /** Functions: created before the tables (defaults, checks and generated columns may call them). */
  readonly before: readonly string[]
  /** Functions that name a table's row type, views, then triggers: created after the tables. */
  readonly after: readonly string[]
  readonly notes: readonly string[]
}

/**
 * Renders the template's routines for the target schema (the statements run
 * after `SET LOCAL search_path TO <target>, pg_catalog`):
 * - each function once, its definition's references to the template schema
 *   (`"tenant 1".film`, in its header and its body) rewritten to the target schema,
 *   with `check_function_bodies` off while they are created (as pg_dump does:
 *   bodies may name tables created later). A `SECURITY DEFINER` function would
 *   read the shared tables as their owner, past row-level security: it is created
 *   `SECURITY INVOKER`, with a note. One whose arguments or result name a table's
 *   row type (`RETURNS SETOF customer`) comes after the tables;
 * - each plain aggregate after the tables and functions (its support functions resolve
 *   in the target); an ordered-set, moving or sort-operator one is left out, with a note;
 * - each view over the shared tables `WITH (security_invoker = true)`, so the
 *   querying role's RLS policies apply; a materialized view is left out, with a note
 *   (it would hold every tenant's rows, and RLS does not apply to it);
 * - each trigger on its shared table (disabled again when disabled in the template).
 *   The migration copy never fires them: it runs with
 *   `session_replication_role = replica`, or refuses when it cannot.
 *
 * @example
 * ```ts
 * renderRoutines(routines, 'public').after
 * // ['CREATE VIEW "public"."film_list" WITH (security_invoker = true) AS  SELECT ...', 'CREATE TRIGGER ...']
 * ```
 */
export function renderRoutines(r: TemplateRoutines, targetSchema: string): RenderedRoutines {
  const notes: string[] = []
  const target = `${quoteIdent(targetSchema)}.`
  const own = `${r.quotedSchema}.`
  const rendered = r.functions.map((f) => {
    const statements = [f.definition.split(own).join(target)]
    if (f.securityDefiner) {
      // By the catalog, not by editing its text: the words may stand in a name or a string too.
      statements.push(
        `ALTER ${f.kind.toUpperCase()} ${target}${quoteIdent(f.name)}(${f.signature.split(own).join(target)}) SECURITY INVOKER`,
      )
      notes.push(
        `Function ${JSON.stringify(f.name)} is SECURITY DEFINER: over the shared tables it would read every ` +
          "tenant's rows as its owner, past row-level security. It is created SECURITY INVOKER; if it must " +
          'run as its owner, make it filter by the tenant itself before marking it SECURITY DEFINER again.',
      )
    }
    return {
      statements,
      afterTables: f.usesRowType && !f.usesViewRowType,
      afterViews: f.usesViewRowType,
    }
  })
  const before = rendered
    .filter((f) => !f.afterTables && !f.afterViews)
    .flatMap((f) => f.statements)
  // A function naming a table's row type (`RETURNS SETOF customer`) needs the table first,
  // one naming a view's row type the views.
  const afterTables = rendered.filter((f) => f.afterTables).flatMap((f) => f.statements)
  const afterViews = rendered.filter((f) => f.afterViews).flatMap((f) => f.statements)
  if (before.length > 0) before.unshift('SET LOCAL check_function_bodies = off')
  if (before.length > 0) before.push('SET LOCAL check_function_bodies = on')
  const after: string[] =
    afterTables.length > 0
      ? [
          'SET LOCAL check_function_bodies = off',
          ...afterTables,
          'SET LOCAL check_function_bodies = on',
        ]
      : []
  // Aggregates after every function (their support functions must exist), before the views
  // that call them; no default or check may call one.
  for (const a of r.aggregates) {
    if (a.definition) {
      after.push(a.definition.split(own).join(target))
      continue
    }
    notes.push(
      `Aggregate ${a.name}(${a.signature}) is an ordered-set, moving-aggregate or sort-operator aggregate, which ` +
        `schema generate does not carry over: create it in ${JSON.stringify(targetSchema)} yourself, before what uses it.`,
    )
  }
  for (const v of r.views) {
    if (v.materialized) {
      notes.push(
        `Materialized view ${JSON.stringify(v.name)} is not carried over: over the shared tables it would hold ` +
          "every tenant's rows, and row-level security does not apply to it. Make it a view, or create it per tenant.",
      )
      continue
    }
    after.push(
      `CREATE VIEW ${quoteQualified(targetSchema, v.name)} WITH (security_invoker = true) AS ${v.definition.split(own).join(target).replace(/;\s*$/, '')}`,
    )
  }
  if (afterViews.length > 0) {
    after.push(
      'SET LOCAL check_function_bodies = off',
      ...afterViews,
      'SET LOCAL check_function_bodies = on',
    )
  }
  for (const t of r.triggers) {
    // pg_get_triggerdef names the table with its schema whatever the search_path.
    after.push(t.definition.split(own).join(target))
    if (t.disabled) {
      after.push(
        `ALTER TABLE ${quoteQualified(targetSchema, t.table)} DISABLE TRIGGER ${quoteIdent(t.name)}`,
      )
    }
  }
  return { before, after, notes }
}
