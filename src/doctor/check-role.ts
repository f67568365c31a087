import { describeUnsafeRole, inspectRole, type RuntimeRoleFacts } from '../db/role-check.js'
import type { TableFacts } from '../sql/catalog/index.js'
import { DEFAULTS } from '../sql/defaults.js'
import type { Queryable } from '../sql/queryable.js'
import { quoteIdent } from '../sql/quote.js'
import { checkLargeObjects } from './check-large-objects.js'
import { checkSequenceUpdate } from './check-sequences.js'
import { type Finding, finding } from './findings.js'

/**
 * The runtime role must exist, not be a superuser, not have BYPASSRLS, be a
 * member (by any path, inherited or not) of no such role and of no owner of a
 * tenant-aware table, and should not be able to create temporary tables; tenant
 * data must not sit in large objects it may read, nor may it set a tenant-aware
 * table's sequence (row level security covers neither).
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
  options: { tenantColumn?: string | undefined; tenantsSchema?: string | undefined } = {},
): Promise<Finding[]> {
  const facts = await inspectRole(db, role, options)
  if (facts === undefined) {
    return [
      finding(
        'ROLE_MISSING',
        `role ${role}`,
        'The runtime role does not exist.',
        `rowtenancy init --runtime-role ${role}`,
      ),
    ]
  }
  const notOwned = tables.filter((t) => !facts.ownedTables.includes(`${t.schema}.${t.name}`))
  return [
    ...bypassFindings(role, facts),
    ...membershipFindings(role, facts),
    ...ownershipFindings(role, facts, tables),
    ...privilegeFindings(role, facts),
    // A superuser writes everything: ROLE_SUPERUSER says so.
    ...(facts.superuser
      ? []
      : [
          ...(await directoryFindings(db, role, options.tenantsSchema ?? DEFAULTS.schema)),
          ...(await schemaCreateFindings(db, role)),
          // An owner has every privilege: ROLE_OWNS_TABLE says so.
          ...(await tablePrivilegeFindings(db, role, notOwned)),
          ...(await defaultPrivilegeFindings(db, role)),
          ...(await checkLargeObjects(db, role, tables)),
          ...(await checkSequenceUpdate(db, role, notOwned)),
        ]),
  ]
}

/**
 * The tenant directory (`tenants`, `tenant_domains`, `tenant_placements`) written by the
 * runtime role: a tenant's code could take another tenant's domain, or suspend it. A table
 * made after `rowtenancy init` gets the runtime role's DML through default privileges. INSERT
 * and UPDATE count when granted on any column.
 */
async function directoryFindings(db: Queryable, role: string, schema: string): Promise<Finding[]> {
  const { rows } = await db.query(
    `select t.name, format('%I.%I', $2::text, t.name) as quoted
       from unnest(array['tenants', 'tenant_domains', 'tenant_placements']) t(name)
      where pg_catalog.to_regclass(format('%I.%I', $2::text, t.name)) is not null
        and (pg_catalog.has_table_privilege($1::text, format('%I.%I', $2::text, t.name), 'DELETE, TRUNCATE')
             -- INSERT and UPDATE may be granted on columns alone (update (domain) takes a domain)
             or pg_catalog.has_any_column_privilege($1::text, format('%I.%I', $2::text, t.name),
                                                    'INSERT, UPDATE'))`,
    [role, schema],
  )
  return (rows as { name: string; quoted: string }[]).map((r) =>
    finding(
      'ROLE_WRITES_DIRECTORY',
      `${schema}.${r.name}`,
      `The runtime role may write the tenant directory (${r.name}): a tenant's code could take another ` +
        "tenant's domain, or suspend it.",
      `revoke insert, update, delete, truncate on ${r.quoted} from ${quoteIdent(role)}`,
    ),
  )
}

/**
 * Schemas the runtime role may create objects in: raw SQL can create a table there
 * named like a tenant-aware table and put the schema first on the role's own default
 * search_path (`alter role current_user set search_path = ...`, which a role may do
 * for itself). Unlike a temporary table, it then shadows the real table for every
 * later connection, and rows other tenants write land in a table with no row level
 * security that the role owns.
 */
async function schemaCreateFindings(db: Queryable, role: string): Promise<Finding[]> {
  return [...(await databaseCreateFindings(db, role)), ...(await inSchemaFindings(db, role))]
}

/**
 * CREATE on the database: the role may make a schema of its own, and then a table in it, as
 * with CREATE on an existing schema (the database's owner has it).
 */
async function databaseCreateFindings(db: Queryable, role: string): Promise<Finding[]> {
  const { rows } = await db.query(
    `select current_database() as name, format('%I', current_database()) as quoted
      where pg_catalog.has_database_privilege($1::text, current_database(), 'CREATE')`,
    [role],
  )
  return (rows as { name: string; quoted: string }[]).map((r) =>
    finding(
      'ROLE_CAN_CREATE_IN_SCHEMA',
      `role ${role} -> database ${r.name}`,
      'The runtime role may create schemas in this database (CREATE on it, or it owns it): raw SQL can ' +
        'create a schema and a table there named like a tenant-aware table and put the schema first on ' +
        "the role's own default search_path, so that for every later connection the table shadows the " +
        "real one (no row level security), and other tenants' writes land in it.",
      `revoke create on database ${r.quoted} from ${quoteIdent(role)}  -- and make another role own the database`,
      'warning',
    ),
  )
}

/** CREATE on existing schemas. */
async function inSchemaFindings(db: Queryable, role: string): Promise<Finding[]> {
  const { rows } = await db.query(
    `select n.nspname as schema, format('%I', n.nspname) as quoted
       from pg_catalog.pg_namespace n
      where n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_%'
        and pg_catalog.has_schema_privilege($1::text, n.oid, 'CREATE')
      order by 1`,
    [role],
  )
  return (rows as { schema: string; quoted: string }[]).map((r) =>
    finding(
      'ROLE_CAN_CREATE_IN_SCHEMA',
      `role ${role} -> schema ${r.schema}`,
      'The runtime role may create objects in this schema: raw SQL can create a table there named ' +
        "like a tenant-aware table and put the schema first on the role's own default search_path, " +
        'so that for every later connection the table shadows the real one (no row level security), ' +
        "and other tenants' writes land in it.",
      `revoke create on schema ${r.quoted} from ${quoteIdent(role)}  -- and from public, if granted there`,
      'warning',
    ),
  )
}

/**
 * Privileges on tenant-aware tables that row level security does not govern: TRUNCATE
 * (one statement empties every tenant's rows), TRIGGER (code of the role's choosing
 * runs on every tenant's writes) and REFERENCES, on any column (a foreign key of a table
 * the role made is checked against every tenant's rows: an oracle for other tenants' keys).
 */
async function tablePrivilegeFindings(
  db: Queryable,
  role: string,
  tables: readonly TableFacts[],
): Promise<Finding[]> {
  if (tables.length === 0) return []
  const { rows } = await db.query(
    `select t.oid::int as oid,
            pg_catalog.has_table_privilege($1::text, t.oid, 'TRUNCATE') as truncate,
            pg_catalog.has_table_privilege($1::text, t.oid, 'TRIGGER') as trigger,
            pg_catalog.has_any_column_privilege($1::text, t.oid, 'REFERENCES') as references
       from unnest($2::oid[]) t(oid)`,
    [role, tables.map((t) => t.oid)],
  )
  type Row = { oid: number; truncate: boolean; trigger: boolean; references: boolean }
  return (rows as Row[]).flatMap((r) => {
    const table = tables.find((t) => t.oid === r.oid)
    const privileges = [
      r.truncate && 'TRUNCATE',
      r.trigger && 'TRIGGER',
      r.references && 'REFERENCES',
    ].filter(Boolean)
    if (table === undefined || privileges.length === 0) return []
    const list = privileges.join(', ')
    return [
      finding(
        'ROLE_TABLE_PRIVILEGE',
        `role ${role} -> ${table.qualified}`,
        `The runtime role has ${list} on a tenant-aware table; row level security does not govern ` +
          "them: TRUNCATE empties every tenant's rows, a trigger runs on every tenant's writes, a " +
          "foreign key of the role's own table is checked against every tenant's rows (it tells " +
          "whether another tenant's key exists).",
        `revoke ${list.toLowerCase()} on ${table.quoted} from ${quoteIdent(role)}`,
      ),
    ]
  })
}

/**
 * Default privileges that give the runtime role (or PUBLIC, or a role it belongs to) TRUNCATE,
 * TRIGGER or REFERENCES on tables made later: each new tenant-aware table gets a privilege
 * row level security does not govern, unseen until then.
 */
async function defaultPrivilegeFindings(db: Queryable, role: string): Promise<Finding[]> {
  const { rows } = await db.query(
    `select format('%s%s', pg_catalog.pg_get_userbyid(d.defaclrole),
                   coalesce(' in schema ' || n.nspname, '')) as scope,
            format('alter default privileges for role %I%s revoke %s on tables from %s',
                   pg_catalog.pg_get_userbyid(d.defaclrole), case when n.nspname is null then '' else format(' in schema %I', n.nspname) end,
                   string_agg(distinct lower(a.privilege_type), ', '),
                   case when a.grantee = 0 then 'public' else format('%I', pg_catalog.pg_get_userbyid(a.grantee)) end) as fix,
            string_agg(distinct a.privilege_type, ', ') as privileges
       from pg_catalog.pg_default_acl d
       left join pg_catalog.pg_namespace n on n.oid = d.defaclnamespace
       cross join lateral pg_catalog.aclexplode(d.defaclacl) a
      where d.defaclobjtype = 'r' and a.privilege_type in ('TRUNCATE', 'TRIGGER', 'REFERENCES')
        and (a.grantee = 0 or pg_catalog.pg_has_role($1::text, a.grantee, 'USAGE')
             or pg_catalog.pg_has_role($1::text, a.grantee, 'MEMBER'))
      group by d.defaclrole, n.nspname, a.grantee
      order by 1`,
    [role],
  )
  return (rows as { scope: string; fix: string; privileges: string }[]).map((r) =>
    finding(
      'ROLE_TABLE_PRIVILEGE',
      `role ${role} -> default privileges of ${r.scope}`,
      `Tables made later get ${r.privileges} for the runtime role by default privileges; row level ` +
        "security does not govern them: TRUNCATE empties every tenant's rows, a trigger runs on every " +
        "tenant's writes, a foreign key of the role's own table probes every tenant's keys.",
      r.fix,
    ),
  )
}

/** Superuser, BYPASSRLS or REPLICATION: row level security never applies, or is read around. */
function bypassFindings(role: string, facts: RuntimeRoleFacts): Finding[] {
  const object = `role ${role}`
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
  if (facts.replication) {
    out.push(
      finding(
        'ROLE_REPLICATION',
        object,
        "The runtime role has REPLICATION: a replication connection (a base backup) or logical decoding reads every tenant's rows, past row level security.",
        `alter role ${quoted} noreplication`,
      ),
    )
  }
  return out
}

/** CREATEROLE and TEMP: ways around the isolation the role's privileges open. */
function privilegeFindings(role: string, facts: RuntimeRoleFacts): Finding[] {
  const object = `role ${role}`
  const quoted = quoteIdent(role)
  const out: Finding[] = []
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

/** Memberships (inherited or not) in a superuser or BYPASSRLS role, or one that reaches the server's files. */
function membershipFindings(role: string, facts: RuntimeRoleFacts): Finding[] {
  return facts.unsafeMemberships.map((m) =>
    finding(
      'ROLE_MEMBER_OF_UNSAFE',
      `role ${role} -> ${m.role}`,
      `The runtime role is a member of ${describeUnsafeRole(m)} (${m.path.join(' -> ')}); ` +
        (m.serverAccess
          ? "raw SQL reads every tenant's rows through it (COPY ... FROM PROGRAM 'psql ...' runs as the server's user)."
          : 'inherited or not, one raw SET ROLE escapes row level security and sticks to the pooled connection.'),
      `revoke ${quoteIdent(m.path[1] ?? m.role)} from ${quoteIdent(role)}`,
    ),
  )
}

/** Tenant-aware tables (all owned tables when none is named) the role owns, directly or through a role. */
function ownershipFindings(
  role: string,
  facts: RuntimeRoleFacts,
  tables: readonly TableFacts[],
): Finding[] {
  const ids = new Set(tables.map((t) => `${t.schema}.${t.name}`))
  return facts.ownedTables
    .filter((table) => ids.size === 0 || ids.has(table))
    .map((table) =>
      finding(
        'ROLE_OWNS_TABLE',
        `role ${role} -> ${table}`,
        'The runtime role owns a tenant-aware table, or is a member (inherited or not) of a role ' +
          'that does: it can disable row level security or drop the policy.',
        `alter table ${table} owner to <owner role>  -- the migrator; keep the runtime role owning nothing and a member of no owner`,
      ),
    )
}
