import type { TableFacts } from '../sql/catalog/index.js'
import type { Queryable } from '../sql/queryable.js'
import { type Finding, finding } from './findings.js'

/**
 * The runtime role must exist, not be a superuser, not have BYPASSRLS, and own
 * (or inherit ownership of) no tenant-aware table.
 *
 * @internal
 * @example
 * ```ts
 * const findings = await checkRuntimeRole(pool, 'app_runtime', tables)
 * ```
 */
export async function checkRuntimeRole(
  db: Queryable,
  role: string,
  tables: readonly TableFacts[],
): Promise<Finding[]> {
  const object = `role ${role}`
  const { rows } = await db.query(
    `select r.rolsuper as superuser, r.rolbypassrls as bypass,
            array(select format('%I.%I', n.nspname, c.relname)
                    from pg_class c join pg_namespace n on n.oid = c.relnamespace
                   where not r.rolsuper and c.oid = any($2::oid[]) and pg_has_role(r.oid, c.relowner, 'USAGE')
                   order by 1) as owned
       from pg_roles r where r.rolname = $1`,
    [role, tables.map((t) => t.oid)],
  )
  const r = rows[0]
  if (!r) {
    return [
      finding(
        'ROLE_MISSING',
        object,
        'The runtime role does not exist.',
        `rowtenancy init --runtime-role ${role}`,
      ),
    ]
  }
  const out: Finding[] = []
  if (r.superuser) {
    out.push(
      finding(
        'ROLE_SUPERUSER',
        object,
        'The runtime role is a superuser: row level security never applies to it.',
        `alter role "${role}" nosuperuser  -- and use another role for administration`,
      ),
    )
  }
  if (r.bypass) {
    out.push(
      finding(
        'ROLE_BYPASSRLS',
        object,
        'The runtime role has BYPASSRLS: row level security never applies to it.',
        `alter role "${role}" nobypassrls`,
      ),
    )
  }
  for (const table of r.owned as string[]) {
    out.push(
      finding(
        'ROLE_OWNS_TABLE',
        `${object} -> ${table}`,
        'The runtime role owns (or inherits ownership of) a tenant-aware table: it can disable row level security or drop the policy.',
        `alter table ${table} owner to <owner role>  -- the migrator; keep the runtime role owning nothing`,
      ),
    )
  }
  return out
}
