import type { Queryable } from '../sql/queryable.js'

/**
 * What the doctor knows about one tenant-aware table.
 *
 * @internal
 * @example
 * ```ts
 * const t: TableFacts = { oid: 16384, schema: 'public', name: 'accounts', qualified: 'public.accounts', ... }
 * ```
 */
export interface TableFacts {
  readonly oid: number
  readonly schema: string
  readonly name: string
  /** `schema.name` as the user reads it. */
  readonly qualified: string
  /** `"schema"."name"` for SQL in fixes. */
  readonly quoted: string
  readonly rlsEnabled: boolean
  readonly rlsForced: boolean
  /** attnum of the tenant column, null when the table has none. */
  readonly tenantAttnum: number | null
  readonly tenantNotNull: boolean
  readonly tenantType: string | null
}

/**
 * Loads the facts of the named tables (`schema.table` or `table`, resolved
 * through the search path); names that resolve to nothing are returned apart.
 *
 * @internal
 * @example
 * ```ts
 * const { tables, missing } = await loadTableFacts(pool, ['public.accounts'], 'tenant_id')
 * ```
 */
export async function loadTableFacts(
  db: Queryable,
  names: readonly string[],
  tenantColumn: string,
): Promise<{ tables: TableFacts[]; missing: string[] }> {
  const { rows } = await db.query(
    `select t.name as input, c.oid::int as oid, n.nspname as schema, c.relname as name,
            case when c.oid is not null then format('%I.%I', n.nspname, c.relname) end as quoted,
            c.relrowsecurity as enabled, c.relforcerowsecurity as forced,
            a.attnum::int as attnum, a.attnotnull as notnull,
            format_type(a.atttypid, a.atttypmod) as type
       from unnest($1::text[]) with ordinality as t(name, ord)
       left join pg_class c on c.oid = to_regclass(t.name)
       left join pg_namespace n on n.oid = c.relnamespace
       left join pg_attribute a on a.attrelid = c.oid and a.attname = $2 and a.attnum > 0 and not a.attisdropped
      order by t.ord`,
    [names, tenantColumn],
  )
  const tables: TableFacts[] = []
  const missing: string[] = []
  const seen = new Set<number>()
  for (const r of rows) {
    if (r.oid === null) {
      missing.push(r.input)
      continue
    }
    if (seen.has(r.oid)) continue
    seen.add(r.oid)
    tables.push({
      oid: r.oid,
      schema: r.schema,
      name: r.name,
      qualified: `${r.schema}.${r.name}`,
      quoted: r.quoted,
      rlsEnabled: r.enabled,
      rlsForced: r.forced,
      tenantAttnum: r.attnum,
      tenantNotNull: Boolean(r.notnull),
      tenantType: r.type,
    })
  }
  return { tables, missing }
}
