import type { Queryable } from '../sql/queryable.js'
import { bindMigrationTenant, citusInstalled } from './tenant-setting.js'

/**
 * Runs `fn` in one transaction on `client` that holds the tenant's migration lock
 * (the advisory lock `copyTenant` takes, so a copy, a rollback and a drop of the
 * same tenant never overlap) and is bound to the tenant (so a forced row-level
 * policy shows its rows, on Citus on every worker): `BEGIN`, lock and binding,
 * `fn`, `COMMIT`; on any error `ROLLBACK` and rethrow. A transaction in which `fn` wrote nothing commits as
 * harmlessly as it would roll back.
 *
 * @example
 * ```ts
 * const deleted = await withTenantMigrationLock(client, '7', async () => {
 *   const r = await client.query('delete from public.book where tenant_id = $1', ['7'])
 *   return r.rowCount
 * })
 * ```
 */
export async function withTenantMigrationLock<T>(
  client: Queryable,
  tenantId: string,
  fn: () => Promise<T>,
): Promise<T> {
  const citus = await citusInstalled(client)
  await client.query('begin')
  try {
    await bindMigrationTenant(client, tenantId, citus)
    await client.query(
      "select pg_advisory_xact_lock(hashtext('rowtenancy.migrate'), hashtext($1))",
      [tenantId],
    )
    const result = await fn()
    await client.query('commit')
    return result
  } catch (err) {
    await client.query('rollback').catch(() => {})
    throw err
  }
}
