import type { TableFacts } from '../sql/catalog/index.js'
import type { Queryable } from '../sql/queryable.js'
import { quoteIdent, quoteLiteral } from '../sql/quote.js'
import { type Finding, finding } from './findings.js'

/**
 * Large objects are not rows: row level security never covers them. One belongs to the role
 * that created it (the runtime role, shared by every tenant), and its owner reads, overwrites
 * and unlinks it by id (`lo_get`, `lo_put`, `lo_unlink`), while `pg_largeobject_metadata`
 * lists every id to every role. So a tenant-aware table whose rows point at large objects
 * keeps the row apart and hands out the file. Reported: such a column (an error) while the
 * runtime role may create or read large objects, and large objects the runtime role may read
 * (a warning when no tenant-aware table points at them: they may hold nothing private).
 *
 * @internal
 * @example
 * ```ts
 * const findings = await checkLargeObjects(pool, 'app_runtime', tables)
 * ```
 */
export async function checkLargeObjects(
  db: Queryable,
  role: string,
  tables: readonly TableFacts[],
): Promise<Finding[]> {
  const access = await largeObjectAccess(db, role)
  const columns = access.creates || access.readable > 0 ? await oidColumns(db, tables) : []
  return [...columnFindings(role, columns), ...readableFindings(role, access, columns.length > 0)]
}

interface LargeObjectAccess {
  /** Large objects the role may read: it owns them (or a role it belongs to does), a grant, or `lo_compat_privileges`. */
  readonly readable: number
  /** Of those, the ones it may also write or unlink. */
  readonly writable: number
  /** Whether it may create large objects (`lo_create`, `lo_creat`, `lo_from_bytea` are PUBLIC by default). */
  readonly creates: boolean
}

/** What the runtime role may do with large objects. */
async function largeObjectAccess(db: Queryable, role: string): Promise<LargeObjectAccess> {
  // has_largeobject_privilege is PostgreSQL 17+: read the owner and the ACL by hand.
  const { rows } = await db.query(
    `with m as (
       select (pg_catalog.current_setting('lo_compat_privileges')::bool
               or pg_catalog.pg_has_role($1::text, m.lomowner, 'USAGE')
               or pg_catalog.pg_has_role($1::text, m.lomowner, 'MEMBER')) as owns,
              exists (select 1 from pg_catalog.aclexplode(m.lomacl) a
                       where a.privilege_type = 'SELECT'
                         and (a.grantee = 0 or pg_catalog.pg_has_role($1::text, a.grantee, 'USAGE'))) as reads,
              exists (select 1 from pg_catalog.aclexplode(m.lomacl) a
                       where a.privilege_type = 'UPDATE'
                         and (a.grantee = 0 or pg_catalog.pg_has_role($1::text, a.grantee, 'USAGE'))) as writes
         from pg_catalog.pg_largeobject_metadata m)
     select (select count(*) from m where owns or reads)::int as readable,
            (select count(*) from m where owns or writes)::int as writable,
            (pg_catalog.has_function_privilege($1::text, 'pg_catalog.lo_create(oid)', 'EXECUTE')
             or pg_catalog.has_function_privilege($1::text, 'pg_catalog.lo_creat(integer)', 'EXECUTE')
             or pg_catalog.has_function_privilege($1::text, 'pg_catalog.lo_from_bytea(oid, bytea)', 'EXECUTE')) as creates`,
    [role],
  )
  return rows[0] as LargeObjectAccess
}

/** Columns of tenant-aware tables typed `oid`, or a domain over it (the `lo` extension's type). */
async function oidColumns(
  db: Queryable,
  tables: readonly TableFacts[],
): Promise<{ table: string; column: string; type: string }[]> {
  if (tables.length === 0) return []
  const { rows } = await db.query(
    `select a.attrelid::int as oid, a.attname as column, pg_catalog.format_type(a.atttypid, null) as type
       from pg_catalog.pg_attribute a
       join pg_catalog.pg_type t on t.oid = a.atttypid
      where a.attrelid = any($1::oid[]) and a.attnum > 0 and not a.attisdropped
        and (a.atttypid = 'pg_catalog.oid'::regtype
             or (t.typtype = 'd' and t.typbasetype = 'pg_catalog.oid'::regtype))
      order by a.attrelid, a.attnum`,
    [tables.map((t) => t.oid)],
  )
  return (rows as { oid: number; column: string; type: string }[]).map((r) => ({
    table: tables.find((t) => t.oid === r.oid)?.qualified ?? String(r.oid),
    column: r.column,
    type: r.type,
  }))
}

function columnFindings(
  role: string,
  columns: readonly { table: string; column: string; type: string }[],
): Finding[] {
  return columns.map((c) =>
    finding(
      'LARGE_OBJECT_OUTSIDE_RLS',
      `${c.table}.${c.column}`,
      `A tenant-aware table has a ${c.type} column (${c.column}), how large object ids are kept: row ` +
        'level security keeps the row apart, not the large object. It belongs to the role that created it (the runtime ' +
        "role, shared by every tenant), so any tenant's code reads, overwrites and unlinks it by id " +
        '(lo_get, lo_put, lo_unlink), and pg_largeobject_metadata lists every id.',
      `store the contents as bytea in a tenant-aware table (row level security covers it), move the existing ones (lo_get), then lo_unlink them; to keep ${quoteIdent(role)} from making new ones: revoke execute on function lo_create(oid), lo_creat(integer), lo_from_bytea(oid, bytea) from public`,
    ),
  )
}

function readableFindings(role: string, access: LargeObjectAccess, referenced: boolean): Finding[] {
  if (access.readable === 0) return []
  return [
    finding(
      'LARGE_OBJECT_OUTSIDE_RLS',
      `role ${role} -> large objects`,
      `The runtime role may read ${access.readable} large object(s) (write or unlink ${access.writable}): ` +
        "row level security does not cover large objects, and every tenant's code runs as this role, " +
        'so each of them is readable by every tenant (ids are listed in pg_largeobject_metadata). ' +
        (referenced
          ? 'A tenant-aware table points at large objects (reported above).'
          : "Harmless only if none holds a tenant's data."),
      'keep tenant data in tenant-aware tables (bytea), and unlink the large objects that hold it: ' +
        `select lo_unlink(oid) from pg_largeobject_metadata where lomowner = ${quoteLiteral(quoteIdent(role))}::regrole  -- after moving their contents`,
      referenced ? 'error' : 'warning',
    ),
  ]
}
