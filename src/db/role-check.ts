import { UnsafeRoleError } from '../errors/index.js'
import { DEFAULTS } from '../sql/defaults.js'
import type { Queryable } from '../sql/queryable.js'

/**
 * What the database says about the role a pool connects as.
 *
 * @example
 * ```ts
 * const facts = await inspectRuntimeRole(pool) // { role: 'app_runtime', superuser: false, ... }
 * ```
 */
export interface RuntimeRoleFacts {
  readonly role: string
  readonly superuser: boolean
  readonly bypassRls: boolean
  /** Tenant-aware tables (tables with the tenant column) the role owns or inherits ownership of. */
  readonly ownedTables: readonly string[]
  /** Whether the `citus` extension is installed. */
  readonly citus: boolean
}

/**
 * Reads the facts about the pool's role in one query: superuser, BYPASSRLS,
 * owned tenant-aware tables, and whether Citus is installed.
 *
 * @example
 * ```ts
 * const facts = await inspectRuntimeRole(runtimePool, { tenantColumn: 'tenant_id' })
 * ```
 */
export async function inspectRuntimeRole(
  db: Queryable,
  options: { tenantColumn?: string | undefined } = {},
): Promise<RuntimeRoleFacts> {
  const { rows } = await db.query(
    `select current_user as role, r.rolsuper as superuser, r.rolbypassrls as bypass_rls,
            exists (select 1 from pg_extension where extname = 'citus') as citus,
            array(select format('%s.%s', n.nspname, c.relname)
                    from pg_class c join pg_namespace n on n.oid = c.relnamespace
                   where c.relkind in ('r', 'p')
                     and n.nspname not in ('pg_catalog', 'information_schema')
                     and not r.rolsuper and pg_has_role(current_user, c.relowner, 'USAGE')
                     and exists (select 1 from pg_attribute a
                                  where a.attrelid = c.oid and a.attname = $1
                                    and a.attnum > 0 and not a.attisdropped)
                   order by 1) as owned
       from pg_roles r where r.rolname = current_user`,
    [options.tenantColumn ?? DEFAULTS.tenantColumn],
  )
  const r = rows[0]
  return Object.freeze({
    role: String(r.role),
    superuser: Boolean(r.superuser),
    bypassRls: Boolean(r.bypass_rls),
    ownedTables: Object.freeze([...(r.owned as string[])]),
    citus: Boolean(r.citus),
  })
}

/**
 * Why a role is unsafe for scoped work (empty when it is safe): RLS does not
 * bind a superuser or a BYPASSRLS role, and an owner can switch RLS off.
 *
 * @example
 * ```ts
 * runtimeRoleProblems(facts) // ['is a superuser']
 * ```
 */
export function runtimeRoleProblems(facts: RuntimeRoleFacts): string[] {
  const problems: string[] = []
  if (facts.superuser) problems.push('is a superuser')
  if (facts.bypassRls) problems.push('has BYPASSRLS')
  if (facts.ownedTables.length > 0) {
    const shown = facts.ownedTables.slice(0, 5).join(', ')
    const more = facts.ownedTables.length > 5 ? ` and ${facts.ownedTables.length - 5} more` : ''
    problems.push(`owns tenant-aware tables (${shown}${more})`)
  }
  return problems
}

/**
 * Throws `UnsafeRoleError` when the runtime role bypasses RLS, or, with
 * `allowUnsafeRole`, prints a loud warning instead.
 *
 * @example
 * ```ts
 * assertSafeRuntimeRole(await inspectRuntimeRole(pool), { allowUnsafeRole: false })
 * ```
 */
export function assertSafeRuntimeRole(
  facts: RuntimeRoleFacts,
  options: {
    allowUnsafeRole?: boolean | undefined
    warn?: ((message: string) => void) | undefined
  },
): void {
  const problems = runtimeRoleProblems(facts)
  if (problems.length === 0) return
  const message =
    `The runtime role ${JSON.stringify(facts.role)} ${problems.join(', ')}, so Row Level Security ` +
    'does not isolate tenants for it. Connect the runtime pool as a role that owns nothing and has no ' +
    'BYPASSRLS (create one with `rowtenancy init --runtime-role app_runtime`), and keep the owner for ' +
    'migrations and adminPool.'
  if (!options.allowUnsafeRole) throw new UnsafeRoleError(message)
  const warn = options.warn ?? ((m: string) => console.warn(m))
  warn(`rowtenancy WARNING (allowUnsafeRole): ${message}`)
}
