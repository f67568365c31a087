import { UnsafeRoleError } from '../errors/index.js'
import { DEFAULTS } from '../sql/defaults.js'
import type { Queryable } from '../sql/queryable.js'

/**
 * A role the runtime role can become (`SET ROLE`) or act as through membership,
 * whatever the membership's INHERIT or (PostgreSQL 16+) SET option says, that
 * row level security does not bind.
 *
 * @example
 * ```ts
 * const r: ReachableRole = { role: 'owner', path: ['app_runtime', 'owner'], superuser: false, bypassRls: false, serverAccess: false, replication: false }
 * ```
 */
export interface ReachableRole {
  readonly role: string
  /** The membership chain from the runtime role to this one. */
  readonly path: readonly string[]
  readonly superuser: boolean
  readonly bypassRls: boolean
  /**
   * One of the predefined roles that read or write the server's files or run programs on it
   * as the server's operating system user (`pg_read_server_files`, `pg_write_server_files`,
   * `pg_execute_server_program`): superuser-level access, `COPY ... FROM PROGRAM 'psql ...'`
   * reads every tenant's rows.
   */
  readonly serverAccess: boolean
  /** REPLICATION: it reads every row of every tenant through the write-ahead log. */
  readonly replication: boolean
}

/**
 * The predefined roles whose members reach the server's files or programs (see
 * {@link ReachableRole.serverAccess}).
 */
const SERVER_ACCESS_ROLES =
  "'pg_read_server_files', 'pg_write_server_files', 'pg_execute_server_program'"

/**
 * What a reachable role is, for messages: `a superuser`, `a BYPASSRLS role`, or the
 * predefined role that reaches the server's files or programs.
 *
 * @internal
 */
export function describeUnsafeRole(m: ReachableRole): string {
  if (m.superuser) return 'a superuser'
  if (m.bypassRls) return 'a BYPASSRLS role'
  if (m.replication) return 'a REPLICATION role, which reads every row through the write-ahead log'
  return `${m.role}, which reaches the server's files or programs as its operating system user`
}

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
  /** REPLICATION: a replication connection or logical decoding reads every tenant's rows. */
  readonly replication: boolean
  /**
   * Tenant-aware tables (tables with the tenant column) owned by the role or by
   * any role it is a member of, directly or not, inherited or not.
   */
  readonly ownedTables: readonly string[]
  /**
   * Other roles it is a member of (any path, any option) that are superusers, have BYPASSRLS,
   * or reach the server's files or programs.
   */
  readonly unsafeMemberships: readonly ReachableRole[]
  /** CREATEROLE before PostgreSQL 16: it can grant itself membership in the owner. */
  readonly createRole: boolean
  /** It may create temporary tables (TEMP on the database, often through PUBLIC). */
  readonly canCreateTemp: boolean
  /** Whether the `citus` extension is installed. */
  readonly citus: boolean
}

/**
 * The membership edges of the role graph, as a subquery of `(member, roleid)`: the rows of
 * `pg_auth_members`, and the database's owner as a member of `pg_database_owner`
 * (PostgreSQL 14+), which has no row there.
 *
 * @internal
 */
export const MEMBERSHIPS = `(select a.member, a.roleid from pg_catalog.pg_auth_members a
          union all
          select d.datdba, pg_catalog.to_regrole('pg_database_owner')::oid
            from pg_catalog.pg_database d
           where d.datname = pg_catalog.current_database()
             and pg_catalog.to_regrole('pg_database_owner') is not null)`

/**
 * The role graph query behind {@link inspectRuntimeRole} and the doctor: every
 * role reachable from `$1` through `pg_auth_members` (and `pg_database_owner`, which
 * the database's owner is a member of without a row there), with no regard to the
 * INHERIT or SET options (a NOINHERIT member can still `SET ROLE`), and what
 * makes the role unsafe for scoped work. `$1` is the role (null: the connected
 * one), `$2` the tenant column.
 *
 * @internal
 */
export const ROLE_GRAPH_SQL = `
with recursive reach (oid, path) as (
  select r.oid, array[r.rolname::text] from pg_catalog.pg_roles r
   where r.rolname = coalesce($1::text, current_user::text)
  union
  select m.roleid, reach.path || g.rolname::text
    from reach
    join ${MEMBERSHIPS} m on m.member = reach.oid
    join pg_catalog.pg_roles g on g.oid = m.roleid
   where not g.rolname::text = any (reach.path)
)
select r.rolname as role, r.rolsuper as superuser, r.rolbypassrls as bypass_rls,
       r.rolreplication as replication,
       r.rolcreaterole and current_setting('server_version_num')::int < 160000 as create_role,
       has_database_privilege(r.oid, current_database(), 'TEMP') as can_temp,
       exists (select 1 from pg_catalog.pg_extension where extname = 'citus') as citus,
       coalesce((select json_agg(json_build_object('role', g.rolname, 'path', x.path,
                                                   'superuser', g.rolsuper, 'bypassRls', g.rolbypassrls,
                                                   'serverAccess', g.rolname in (${SERVER_ACCESS_ROLES}),
                                                   'replication', g.rolreplication)
                                 order by g.rolname)
                   from (select distinct on (oid) oid, path from reach order by oid, cardinality(path)) x
                   join pg_catalog.pg_roles g on g.oid = x.oid
                  where g.oid <> r.oid
                    and (g.rolsuper or g.rolbypassrls or g.rolreplication
                         or g.rolname in (${SERVER_ACCESS_ROLES}))), '[]') as unsafe,
       array(select format('%s.%s', n.nspname, c.relname)
               from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
              where c.relkind in ('r', 'p')
                and n.nspname not in ('pg_catalog', 'information_schema')
                and c.relowner in (select oid from reach)
                and exists (select 1 from pg_catalog.pg_attribute a
                             where a.attrelid = c.oid and a.attname = $2
                               and a.attnum > 0 and not a.attisdropped)
              order by 1) as owned
  from pg_catalog.pg_roles r where r.rolname = coalesce($1::text, current_user::text)`

/**
 * Reads the facts about the pool's role in one query: superuser, BYPASSRLS,
 * every role it can become (the whole membership graph), tenant-aware tables
 * any of them owns, CREATEROLE, TEMP, and whether Citus is installed.
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
  const facts = await inspectRole(db, null, options)
  if (facts === undefined) throw new UnsafeRoleError('The connected role could not be inspected.')
  return facts
}

/**
 * {@link inspectRuntimeRole} for a role by name; `undefined` when it does not exist.
 *
 * @internal
 */
export async function inspectRole(
  db: Queryable,
  role: string | null,
  options: { tenantColumn?: string | undefined } = {},
): Promise<RuntimeRoleFacts | undefined> {
  const { rows } = await db.query(ROLE_GRAPH_SQL, [
    role,
    options.tenantColumn ?? DEFAULTS.tenantColumn,
  ])
  const r = rows[0]
  if (r === undefined) return undefined
  const unsafe = (typeof r.unsafe === 'string' ? JSON.parse(r.unsafe) : r.unsafe) as ReachableRole[]
  return Object.freeze({
    role: String(r.role),
    superuser: Boolean(r.superuser),
    bypassRls: Boolean(r.bypass_rls),
    replication: Boolean(r.replication),
    ownedTables: Object.freeze([...(r.owned as string[])]),
    unsafeMemberships: Object.freeze(unsafe.map((u) => Object.freeze(u))),
    createRole: Boolean(r.create_role),
    canCreateTemp: Boolean(r.can_temp),
    citus: Boolean(r.citus),
  })
}

/**
 * Why a role is unsafe for scoped work (empty when it is safe): RLS does not
 * bind a superuser or a BYPASSRLS role, an owner can switch RLS off, and a
 * member of such a role can `SET ROLE` to it (one raw statement, and it sticks
 * to the pooled connection). TEMP is reported by the doctor, not here.
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
  if (facts.replication) {
    problems.push('has REPLICATION (it reads every row through the write-ahead log)')
  }
  for (const m of facts.unsafeMemberships) {
    problems.push(
      `is a member of ${describeUnsafeRole(m)} (${m.path.join(' -> ')}) and can SET ROLE to it`,
    )
  }
  if (facts.ownedTables.length > 0) {
    const shown = facts.ownedTables.slice(0, 5).join(', ')
    const more = facts.ownedTables.length > 5 ? ` and ${facts.ownedTables.length - 5} more` : ''
    problems.push(
      `owns tenant-aware tables (${shown}${more}), itself or through a role it is a member of`,
    )
  }
  if (facts.createRole) {
    problems.push('has CREATEROLE (before PostgreSQL 16 it can grant itself the owner role)')
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
