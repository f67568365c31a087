import type { Queryable } from './queryable.js'

/**
 * Revokes every privilege on `table` (quoted, e.g. `"public"."rowtenancy_migration"`)
 * from every role but its owner, `PUBLIC` included: grants made by a schema's default
 * privileges (which give an app role DML on every new table) or by hand. For tables
 * only the migration or the binding's owner may write. With `keepSelect`, every role
 * that held a privilege keeps `SELECT`. Run it as the owner.
 *
 * @example
 * ```ts
 * await revokeAllButOwner(tx, '"public"."rowtenancy_migration"')
 * ```
 */
export async function revokeAllButOwner(
  db: Queryable,
  table: string,
  { keepSelect = false }: { keepSelect?: boolean } = {},
): Promise<void> {
  const { rows } = await db.query(
    `select distinct case when a.grantee = 0 then 'public'
                          else pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) end as grantee
       from pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
      where c.oid = $1::regclass and a.grantee <> c.relowner`,
    [table],
  )
  for (const r of rows as { grantee: string }[]) {
    await db.query(`revoke all on ${table} from ${r.grantee}`)
    if (keepSelect) await db.query(`grant select on ${table} to ${r.grantee}`)
  }
}
