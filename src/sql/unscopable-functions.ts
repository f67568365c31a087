/**
 * Functions a tenant-scoped statement may not call: they set the tenant binding
 * (`set_config`, and rowtenancy's own binding functions: `rowtenancy_enter` and its
 * SECURITY DEFINER half `rowtenancy_enter_check`, which sets `rowtenancy.legacy_schema` for
 * any tenant it is given, `rowtenancy_seal_bind`), or run SQL they are given as
 * text, a cursor or a table name (the XML export functions, `ts_stat`, `ts_rewrite`,
 * tablefunc's `crosstab` and `connectby`, xml2's `xpath_table`, dblink's), which a query
 * builder's scoping cannot reach. A list: an extension not named here that runs SQL text
 * is not refused (row level security still applies to what it reads).
 *
 * @internal
 */
export const UNSCOPABLE_FUNCTIONS: ReadonlySet<string> = new Set([
  'set_config',
  'query_to_xml',
  'query_to_xmlschema',
  'query_to_xml_and_xmlschema',
  'cursor_to_xml',
  'cursor_to_xmlschema',
  'table_to_xml',
  'table_to_xmlschema',
  'table_to_xml_and_xmlschema',
  'schema_to_xml',
  'schema_to_xmlschema',
  'schema_to_xml_and_xmlschema',
  'database_to_xml',
  'database_to_xmlschema',
  'database_to_xml_and_xmlschema',
  'ts_stat',
  'ts_rewrite',
  'rowtenancy_enter',
  'rowtenancy_enter_check',
  'rowtenancy_seal_bind',
  'crosstab',
  'crosstab2',
  'crosstab3',
  'crosstab4',
  'connectby',
  'xpath_table',
  'dblink',
  'dblink_exec',
  'dblink_open',
  'dblink_fetch',
  'dblink_send_query',
  'dblink_connect',
  'dblink_connect_u',
])

/**
 * Relations a scoped statement may not write: an UPDATE of `pg_settings` runs
 * `set_config(name, setting, false)` by the view's rule, a session-level setting
 * (`search_path`, a role's parameters) that outlives the checkout.
 *
 * @internal
 */
export const UNWRITABLE_RELATIONS: ReadonlySet<string> = new Set(['pg_settings'])

const CALL = new RegExp(
  `\\b(?:${[...UNSCOPABLE_FUNCTIONS, ...UNWRITABLE_RELATIONS].join('|')})\\b`,
  'i',
)

/**
 * Whether statement text may call one of {@link UNSCOPABLE_FUNCTIONS} or write one of
 * {@link UNWRITABLE_RELATIONS} (the name as a word, plain, quoted or qualified; a column
 * of that name, or a read, counts too).
 *
 * @internal
 * @example
 * ```ts
 * mentionsUnscopableCall('select set_config($1, $2, $3) as "x"') // true
 * ```
 */
export function mentionsUnscopableCall(text: string): boolean {
  return CALL.test(text)
}
