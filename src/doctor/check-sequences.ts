import type { TableFacts } from '../sql/catalog/index.js'
import type { Queryable } from '../sql/queryable.js'
import { quoteIdent } from '../sql/quote.js'
import { type Finding, finding } from './findings.js'

/**
 * UPDATE on the sequence of a tenant-aware table's key (serial or identity): one sequence
 * serves every tenant, and `setval` is not a row. One tenant's raw SQL sets it to its maximum
 * (every tenant's insert fails: "reached maximum value") or back below the keys in use
 * (other tenants' inserts hit duplicate keys). USAGE (nextval) and SELECT (currval, last
 * value) are what the runtime role needs, and what `grantRuntimeRole` gives.
 *
 * @internal
 * @example
 * ```ts
 * const findings = await checkSequenceUpdate(pool, 'app_runtime', tables)
 * ```
 */
export async function checkSequenceUpdate(
  db: Queryable,
  role: string,
  tables: readonly TableFacts[],
): Promise<Finding[]> {
  if (tables.length === 0) return []
  const { rows } = await db.query(
    `select distinct format('%s.%s', n.nspname, s.relname) as sequence,
            format('%I.%I', n.nspname, s.relname) as quoted
       from pg_catalog.pg_depend d
       join pg_catalog.pg_class s on s.oid = d.objid and s.relkind = 'S'
       join pg_catalog.pg_namespace n on n.oid = s.relnamespace
      where d.classid = 'pg_catalog.pg_class'::regclass and d.refclassid = 'pg_catalog.pg_class'::regclass
        and d.refobjid = any($2::oid[]) and d.deptype in ('a', 'i')
        -- has_sequence_privilege raises on another relation: the case keeps it to sequences
        and case when s.relkind = 'S' then pg_catalog.has_sequence_privilege($1::text, s.oid, 'UPDATE') end
      order by 1`,
    [role, tables.map((t) => t.oid)],
  )
  return (rows as { sequence: string; quoted: string }[]).map((r) =>
    finding(
      'ROLE_SEQUENCE_UPDATE',
      `role ${role} -> ${r.sequence}`,
      'The runtime role has UPDATE on the sequence of a tenant-aware table, one sequence for every ' +
        "tenant that row level security does not govern: one tenant's setval stops every tenant's " +
        "inserts (the sequence's maximum) or makes them hit duplicate keys (a value below the keys in use).",
      `revoke update on sequence ${r.quoted} from ${quoteIdent(role)}  -- usage, select is all it needs`,
    ),
  )
}
