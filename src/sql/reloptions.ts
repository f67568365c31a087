/**
 * SQL that is true when the boolean storage parameter `name` is on in `reloptions` (an SQL
 * `text[]` expression, e.g. `c.reloptions`; null or missing: false). The value is read as
 * PostgreSQL reads it, by its own boolean input: `with (security_invoker = t)` is stored as
 * `security_invoker=t`, and `t`, `true`, `on`, `yes`, `y`, `1` and prefixes such as `tr` all
 * mean on. `name` is SQL text: pass a constant, never a value from outside.
 *
 * @internal
 * @example
 * ```ts
 * `select c.oid from pg_class c where not ${reloptionOn('c.reloptions', 'security_invoker')}`
 * ```
 */
export function reloptionOn(reloptions: string, name: string): string {
  return `coalesce((select pg_catalog.bool_or(o.option_value::boolean)
              from pg_catalog.pg_options_to_table(${reloptions}) o
             where o.option_name = '${name}'), false)`
}

/**
 * SQL that is true when the view whose `pg_class` row is `alias` runs with the rights of its
 * caller (`security_invoker`, PostgreSQL 15+), not those of its owner.
 *
 * @internal
 * @example
 * ```ts
 * `select v.relname from pg_class v where v.relkind = 'v' and not ${securityInvoker('v')}`
 * ```
 */
export function securityInvoker(alias: string): string {
  return reloptionOn(`${alias}.reloptions`, 'security_invoker')
}
