import { TenantNotFoundError } from '../errors/index.js'
import type { Queryable } from '../sql/queryable.js'
import { quoteQualified } from '../sql/quote.js'
import type { ManifestTenant } from './manifest.js'
import type { TenantLayout } from './tables.js'

/**
 * The tenant row and its domains, or `TenantNotFoundError`.
 *
 * @internal
 */
export async function readTenant(
  db: Queryable,
  layout: TenantLayout,
  tenantId: string,
  options: { lock?: boolean } = {},
): Promise<ManifestTenant> {
  const { rows } = await db.query(
    `select id::text as id, slug, name, status, to_char(created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as created_at
       from ${quoteQualified(layout.tenantsSchema, 'tenants')} where id = $1::${layout.idType}${options.lock ? ' for update' : ''}`,
    [tenantId],
  )
  const t = rows[0]
  if (!t) throw new TenantNotFoundError(tenantId)
  const d = await db.query(
    `select domain, is_primary from ${quoteQualified(layout.tenantsSchema, 'tenant_domains')}
      where tenant_id = $1::${layout.idType} order by domain`,
    [tenantId],
  )
  return {
    id: t.id,
    slug: t.slug,
    name: t.name,
    status: t.status,
    createdAt: t.created_at,
    domains: d.rows.map((r) => ({ domain: r.domain, isPrimary: r.is_primary })),
  }
}

/**
 * Takes the tenant's lifecycle lock for the rest of the caller's transaction (the
 * migration's advisory lock, so an import, an erase and a migration of the same
 * tenant never overlap).
 *
 * @internal
 */
export async function lockTenant(db: Queryable, tenantId: string): Promise<void> {
  await db.query("select pg_advisory_xact_lock(hashtext('rowtenancy.migrate'), hashtext($1))", [
    tenantId,
  ])
}
