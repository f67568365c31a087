import type { Queryable } from './queryable.js'
import { quoteLiteral } from './quote.js'

/**
 * Revokes every privilege on `table` (quoted, e.g. `"public"."rowtenancy_migration"`)
 * and on the sequences it owns (serial and identity columns) from every role but
 * the owner, `PUBLIC` included: grants made by a schema's default privileges (which
 * give an app role DML on every new table and sequence) or by hand. For tables only
 * the migration or the binding's owner may write. With `keepSelect`, a role that
 * could read the table still can. Run it as the owner.
 *
 * @example
 * ```ts
 * await revokeAllButOwner(tx, '"public"."rowtenancy_migration"')
 * ```
 */
export async function revokeAllButOwner(
  db: Queryable,
  table: string,
  options: { keepSelect?: boolean } = {},
): Promise<void> {
  const { rows } = await db.query(grantsOfStatement(quoteLiteral(table)))
  await revokeGrants(db, rows as Grant[], options)
}

/** A grant {@link grantsOfStatement} lists. */
export interface Grant {
  readonly relation: string
  readonly sequence: boolean
  readonly grantee: string
  readonly reads: boolean
}

/**
 * The statement {@link revokeAllButOwner} reads the grants with, for `table` given as an SQL
 * literal (quoted), to send with other statements in one round trip; hand its rows to
 * {@link revokeGrants}.
 *
 * @example
 * ```ts
 * grantsOfStatement(quoteLiteral('"public"."rowtenancy_migration"'))
 * ```
 */
export function grantsOfStatement(table: string): string {
  return `select distinct r.oid::regclass::text as relation, r.relkind = 'S' as sequence,
            case when a.grantee = 0 then 'public'
                 else pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) end as grantee,
            bool_or(a.privilege_type = 'SELECT') over (partition by r.oid, a.grantee) as reads
       from pg_catalog.pg_class r, pg_catalog.aclexplode(r.relacl) a
      where a.grantee <> r.relowner
        and (r.oid = ${table}::regclass
             or r.oid in (select d.objid from pg_catalog.pg_depend d
                           where d.classid = 'pg_catalog.pg_class'::regclass and d.refobjid = ${table}::regclass
                             and d.refclassid = 'pg_catalog.pg_class'::regclass and d.deptype in ('a', 'i')))`
}

/**
 * Revokes the grants {@link grantsOfStatement} listed (see {@link revokeAllButOwner}).
 *
 * @example
 * ```ts
 * await revokeGrants(tx, rows)
 * ```
 */
export async function revokeGrants(
  db: Queryable,
  grants: readonly Grant[],
  { keepSelect = false }: { keepSelect?: boolean } = {},
): Promise<void> {
  for (const r of grants) {
    const on = `${r.sequence ? 'sequence ' : ''}${r.relation}`
    await db.query(`revoke all on ${on} from ${r.grantee}`)
    if (keepSelect && r.reads && !r.sequence)
      await db.query(`grant select on ${on} to ${r.grantee}`)
  }
}
