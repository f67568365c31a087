import { RLS_SETTING } from '../schema/rls-policy.js'
import type { Queryable } from '../sql/queryable.js'

/**
 * Whether the database is a Citus node (the extension is installed). The
 * statements of a migration that Citus does not run the same way branch on it.
 *
 * @example
 * ```ts
 * if (await citusInstalled(client)) console.log('copy and checksum as separate statements')
 * ```
 */
export async function citusInstalled(db: Queryable): Promise<boolean> {
  const { rows } = await db.query(
    `select exists (select 1 from pg_extension where extname = 'citus') as citus`,
  )
  return rows[0]?.citus === true
}

/**
 * The binding of the open transaction to one tenant on Citus, as ONE query string
 * without parameters (`SET` takes none; the simple protocol runs both statements).
 * A `set_config` stays on the coordinator, so a forced policy on a distributed
 * table would see no tenant on the workers (no rows read, every insert refused by
 * `WITH CHECK`): `SET LOCAL` is forwarded by `citus.propagate_set_commands =
 * 'local'` to every worker the transaction touches. The id is written as an
 * escape string literal, so no character of it can end the literal.
 *
 * @example
 * ```ts
 * citusTenantSettingSql('7')
 * // "set local citus.propagate_set_commands = 'local'; set local rowtenancy.tenant_id = E'7'"
 * ```
 */
export function citusTenantSettingSql(tenantId: string): string {
  const literal = `E'${tenantId.replaceAll('\\', '\\\\').replaceAll("'", "''")}'`
  return `set local citus.propagate_set_commands = 'local'; set local ${RLS_SETTING} = ${literal}`
}

/**
 * Binds the caller's transaction to one tenant (`rowtenancy.tenant_id`, local to
 * the transaction), so the migration's target-side statements (copy, checksums,
 * orphan checks, rollback's deletes) see the tenant's rows under a forced policy:
 * `set_config` on one PostgreSQL, {@link citusTenantSettingSql} on Citus.
 *
 * @example
 * ```ts
 * await client.query('begin')
 * await bindMigrationTenant(client, '7', false)
 * ```
 */
export async function bindMigrationTenant(
  db: Queryable,
  tenantId: string,
  citus: boolean,
): Promise<void> {
  if (citus) await db.query(citusTenantSettingSql(tenantId))
  else await db.query(`select set_config('${RLS_SETTING}', $1, true)`, [tenantId])
}
