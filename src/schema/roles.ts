import { ConfigError, InvalidInputError, UnsafeRoleError } from '../errors/index.js'
import { existingSchemas } from '../sql/catalog/index.js'
import { DEFAULTS } from '../sql/defaults.js'
import { inTransaction, type Queryable } from '../sql/queryable.js'
import { quoteIdent, quoteLiteral } from '../sql/quote.js'

/**
 * Options of {@link grantRuntimeRole} and {@link runtimeRoleGrantsSql}.
 */
export interface RuntimeRoleOptions {
  /** The runtime role: owns nothing, no SUPERUSER, no BYPASSRLS. */
  readonly role: string
  /** Schemas whose tables and sequences it may use; `['public']` by default. */
  readonly schemas?: readonly string[] | undefined
}

/**
 * The grants a runtime role needs, one statement per element: USAGE on each
 * schema, SELECT/INSERT/UPDATE/DELETE on its tables, USAGE/SELECT on its
 * sequences, and the same as default privileges for tables the connected
 * (owner) role creates later. No ownership, no DDL, no TRUNCATE. The tenant
 * directory (`tenants`, `tenant_domains`, `tenant_placements`, where present) is
 * read-only to it: a tenant's code that could write there could take another
 * tenant's domain, or suspend it.
 *
 * @example
 * ```ts
 * runtimeRoleGrantsSql({ role: 'app_runtime' })
 * // ['grant usage on schema "public" to "app_runtime"', 'grant select, insert, update, delete on all tables in schema "public" to "app_runtime"', ...]
 * ```
 */
export function runtimeRoleGrantsSql(options: RuntimeRoleOptions): string[] {
  const role = quoteIdent(options.role)
  return (options.schemas ?? [DEFAULTS.schema]).flatMap((schema) => {
    const s = quoteIdent(schema)
    return [
      `grant usage on schema ${s} to ${role}`,
      `grant select, insert, update, delete on all tables in schema ${s} to ${role}`,
      `grant usage, select on all sequences in schema ${s} to ${role}`,
      `alter default privileges in schema ${s} grant select, insert, update, delete on tables to ${role}`,
      `alter default privileges in schema ${s} grant usage, select on sequences to ${role}`,
      readOnlyDirectory(schema, options.role),
    ]
  })
}

/** The tables of the tenant directory: read by the runtime role, written by the owner only. */
const DIRECTORY = ['tenants', 'tenant_domains', 'tenant_placements']

/** Takes INSERT/UPDATE/DELETE on the directory's tables of `schema` (those present) from `role`. */
function readOnlyDirectory(schema: string, role: string): string {
  const revokes = DIRECTORY.map((table) => {
    const name = quoteLiteral(`${quoteIdent(schema)}.${quoteIdent(table)}`)
    return (
      `if pg_catalog.to_regclass(${name}) is not null then ` +
      `execute pg_catalog.format('revoke insert, update, delete, truncate on %s from %I', ${name}, ${quoteLiteral(role)}); end if;`
    )
  })
  const body = revokes.join(' ')
  if (body.includes('$rowtenancy$')) {
    throw new InvalidInputError(
      `The schema or role name ${JSON.stringify(`${schema} / ${role}`)} contains "$rowtenancy$"; rename it.`,
    )
  }
  return `do $rowtenancy$ begin ${body} end $rowtenancy$`
}

/**
 * What {@link grantRuntimeRole} did.
 *
 * @example
 * ```ts
 * const { created } = await grantRuntimeRole(ownerPool, { role: 'app_runtime' })
 * ```
 */
export interface RuntimeRoleResult {
  readonly role: string
  /** True when the role did not exist and was created (LOGIN, no password yet). */
  readonly created: boolean
  readonly statements: readonly string[]
}

/**
 * Creates the runtime role when missing (`LOGIN NOSUPERUSER NOBYPASSRLS`, no
 * password: set one with `ALTER ROLE ... PASSWORD`) and grants it what
 * {@link runtimeRoleGrantsSql} lists, in one transaction. Refuses with
 * `UnsafeRoleError` a role that is a superuser, has BYPASSRLS, or is the
 * connected role itself (the owner): RLS would not bind it. Takes TEMP on the
 * current database from the role (from PUBLIC, given back to the connected
 * role, when that is where it comes from). Run it as the owner/migrator role.
 * Idempotent.
 *
 * @example
 * ```ts
 * await grantRuntimeRole(ownerPool, { role: 'app_runtime' })
 * ```
 */
export async function grantRuntimeRole(
  db: Queryable,
  options: RuntimeRoleOptions,
): Promise<RuntimeRoleResult> {
  const role = quoteIdent(options.role)
  const grants = runtimeRoleGrantsSql(options)
  return inTransaction(db, async (tx) => {
    const existing = await assertGrantableRole(tx, options.role)
    await assertSchemasExist(tx, options.schemas ?? [DEFAULTS.schema])
    const statements = existing
      ? [...grants]
      : [`create role ${role} login nosuperuser nobypassrls`, ...grants]
    for (const statement of statements) await tx.query(statement)
    for (const statement of await noTempSql(tx, options.role)) {
      await tx.query(statement)
      statements.push(statement)
    }
    return Object.freeze({ role: options.role, created: !existing, statements })
  })
}

/**
 * Throws a `ConfigError` naming every schema of `schemas` that does not exist
 * (the raw error would be `schema "x" does not exist` half-way through the grants).
 * `todo` replaces the default advice (create the shared tables first; nothing
 * was granted) for a caller that has more to say, such as `init`.
 *
 * @example
 * ```ts
 * await assertSchemasExist(ownerPool, ['public', 'app']) // ConfigError: The schema "app" does not exist ...
 * ```
 */
export async function assertSchemasExist(
  db: Queryable,
  schemas: readonly string[],
  todo = 'or create the shared tables first (rowtenancy schema generate --apply, or your migrations). Nothing was granted.',
): Promise<void> {
  const found = await existingSchemas(db, schemas)
  const missing = schemas.filter((s) => !found.has(s)).map((s) => JSON.stringify(s))
  if (missing.length > 0) {
    throw new ConfigError(
      `The schema${missing.length > 1 ? 's' : ''} ${missing.join(', ')} to grant the runtime role on ` +
        `do${missing.length > 1 ? '' : 'es'} not exist: check \`targetSchema\` (and \`tenantsSchema\`), ${todo}`,
    )
  }
}

/**
 * The statements that take TEMP on the current database from the runtime role:
 * a temporary table named like a tenant-aware table would shadow it on that
 * pooled connection for every later request. TEMP usually comes through PUBLIC,
 * so PUBLIC loses it and the connected (owner) role gets it back by name; other
 * roles that need temporary tables must be granted TEMP explicitly.
 */
async function noTempSql(db: Queryable, roleName: string): Promise<string[]> {
  const { rows } = await db.query(
    `select current_database() as db, current_user as me,
            has_database_privilege($1, current_database(), 'TEMP') as role_temp,
            exists (select 1 from pg_database d, aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
                     where d.datname = current_database() and a.grantee = 0
                       and a.privilege_type = 'TEMPORARY') as public_temp`,
    [roleName],
  )
  const r = rows[0] as { db: string; me: string; role_temp: boolean; public_temp: boolean }
  if (!r.role_temp) return []
  const database = quoteIdent(r.db)
  const out = [`revoke temporary on database ${database} from ${quoteIdent(roleName)}`]
  if (r.public_temp) {
    out.push(`grant temporary on database ${database} to ${quoteIdent(r.me)}`)
    out.push(`revoke temporary on database ${database} from public`)
  }
  return out
}

/**
 * Refuses with `UnsafeRoleError` a runtime role that RLS would not bind (a
 * superuser, a BYPASSRLS role, or the connected role itself); resolves to
 * whether the role exists. {@link grantRuntimeRole} runs it first; call it on
 * its own to refuse before any other change (as `rowtenancy init` does).
 *
 * @example
 * ```ts
 * await assertGrantableRole(ownerPool, 'postgres') // UnsafeRoleError: ... is a superuser
 * await assertGrantableRole(ownerPool, 'app_runtime') // true (exists), false (to be created)
 * ```
 */
export async function assertGrantableRole(db: Queryable, roleName: string): Promise<boolean> {
  const { rows } = await db.query(
    `select r.rolsuper, r.rolbypassrls, r.rolname = current_user as is_current
       from pg_roles r where r.rolname = $1`,
    [roleName],
  )
  const existing = rows[0] as
    | { rolsuper: boolean; rolbypassrls: boolean; is_current: boolean }
    | undefined
  if (existing?.rolsuper || existing?.rolbypassrls || existing?.is_current) {
    const why = existing.rolsuper
      ? 'is a superuser'
      : existing.rolbypassrls
        ? 'has BYPASSRLS'
        : 'is the role you are connected as (the owner)'
    throw new UnsafeRoleError(
      `The runtime role ${JSON.stringify(roleName)} ${why}, so Row Level Security would not bind it. ` +
        'Pick a separate role that owns nothing (e.g. app_runtime) and run this as the owner role.',
    )
  }
  return existing !== undefined
}
