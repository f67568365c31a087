import { inspectRole } from '../db/role-check.js'
import type { TableFacts } from '../sql/catalog/index.js'
import type { Queryable } from '../sql/queryable.js'
import { quoteIdent } from '../sql/quote.js'
import { type Finding, finding } from './findings.js'

/**
 * The runtime role must exist, not be a superuser, not have BYPASSRLS, be a
 * member (by any path, inherited or not) of no such role and of no owner of a
 * tenant-aware table, and should not be able to create temporary tables.
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
  options: { tenantColumn?: string | undefined } = {},
): Promise<Finding[]> {
  const object = `role ${role}`
  const facts = await inspectRole(db, role, options)
  if (facts === undefined) {
    return [
      finding(
        'ROLE_MISSING',
        object,
        'The runtime role does not exist.',
        `rowtenancy init --runtime-role ${role}`,
      ),
    ]
  }
  const quoted = quoteIdent(role)
  const out: Finding[] = []
  if (facts.superuser) {
    out.push(
      finding(
        'ROLE_SUPERUSER',
        object,
        'The runtime role is a superuser: row level security never applies to it.',
        `alter role ${quoted} nosuperuser  -- and use another role for administration`,
      ),
    )
  }
  if (facts.bypassRls) {
    out.push(
      finding(
        'ROLE_BYPASSRLS',
        object,
        'The runtime role has BYPASSRLS: row level security never applies to it.',
        `alter role ${quoted} nobypassrls`,
      ),
    )
  }
  for (const m of facts.unsafeMemberships) {
    out.push(
      finding(
        'ROLE_MEMBER_OF_UNSAFE',
        `${object} -> ${m.role}`,
        `The runtime role is a member of ${m.superuser ? 'a superuser' : 'a BYPASSRLS role'} ` +
          `(${m.path.join(' -> ')}); inherited or not, one raw SET ROLE escapes row level security ` +
          'and sticks to the pooled connection.',
        `revoke ${quoteIdent(m.path[1] ?? m.role)} from ${quoted}`,
      ),
    )
  }
  const ids = new Set(tables.map((t) => `${t.schema}.${t.name}`))
  for (const table of facts.ownedTables) {
    if (ids.size > 0 && !ids.has(table)) continue
    out.push(
      finding(
        'ROLE_OWNS_TABLE',
        `${object} -> ${table}`,
        'The runtime role owns a tenant-aware table, or is a member (inherited or not) of a role ' +
          'that does: it can disable row level security or drop the policy.',
        `alter table ${table} owner to <owner role>  -- the migrator; keep the runtime role owning nothing and a member of no owner`,
      ),
    )
  }
  if (facts.createRole) {
    out.push(
      finding(
        'ROLE_CREATEROLE',
        object,
        'The runtime role has CREATEROLE: before PostgreSQL 16 it can grant itself membership in the owner.',
        `alter role ${quoted} nocreaterole`,
      ),
    )
  }
  if (facts.canCreateTemp && !facts.superuser) {
    out.push(
      finding(
        'ROLE_CAN_CREATE_TEMP',
        object,
        'The runtime role may create temporary tables: raw SQL can create one named like a tenant-aware ' +
          'table, which then shadows it for unqualified names on that pooled connection (row level ' +
          'security does not apply to it) for every later request.',
        'revoke temporary on database <db> from public; grant temporary on database <db> to <owner role>  -- rowtenancy init --runtime-role does this',
        'warning',
      ),
    )
  }
  return out
}
