import { MigrationError } from '../errors/index.js'
import type { Queryable } from '../sql/queryable.js'
import { quoteQualified } from '../sql/quote.js'
import type { TenantIdType } from '../tenants/id-types.js'
import type { SourceTenant } from './types.js'

/**
 * Makes sure the legacy tenant exists in `tenants` under its legacy id, inside
 * the caller's transaction: inserts it when missing (slug from the legacy layout,
 * suffixed with the id when another tenant holds it) and adds its domains that
 * are still free. Returns whether the tenant row was created, and the domains
 * that were taken by another tenant.
 *
 * @example
 * ```ts
 * await ensureTenantRow(client, 'public', 'bigint', { id: '7', schema: 'acme', slug: 'acme', name: 'Acme', domains: [] })
 * // { created: true, skippedDomains: [] }
 * ```
 * @internal
 */
export async function ensureTenantRow(
  db: Queryable,
  schema: string,
  idType: TenantIdType,
  tenant: SourceTenant,
): Promise<{ created: boolean; skippedDomains: string[] }> {
  const tenants = quoteQualified(schema, 'tenants')
  const domains = quoteQualified(schema, 'tenant_domains')
  const { rows } = await db.query(`select 1 from ${tenants} where id = $1::${idType}`, [tenant.id])
  let created = false
  if (rows.length === 0) {
    // `on conflict do nothing`: a slug taken meanwhile by a tenant copied in parallel waits for it, then falls back.
    const insert = (slug: string) =>
      db.query(
        `insert into ${tenants} (id, slug, name) values ($1::${idType}, $2, $3) on conflict do nothing`,
        [tenant.id, slug, tenant.name],
      )
    if ((await insert(tenant.slug)).rowCount === 0) {
      const suffix = `-${
        tenant.id
          .replace(/[^a-z0-9]+/gi, '')
          .toLowerCase()
          .slice(0, 20) || 'x'
      }`
      const slug = `${tenant.slug.slice(0, 63 - suffix.length).replace(/-+$/, '')}${suffix}`
      if ((await insert(slug)).rowCount === 0) {
        throw new MigrationError(
          `Cannot create tenant ${tenant.id}: the slugs ${tenant.slug} and ${slug} are both taken. ` +
            'Create the tenant yourself (rowtenancy tenants create --id ...) and rerun.',
        )
      }
    }
    created = true
  }
  const skippedDomains: string[] = []
  for (const domain of tenant.domains) {
    const res = await db.query(
      `insert into ${domains} (tenant_id, domain, is_primary) values ($1::${idType}, $2, $3)
       on conflict do nothing`,
      [tenant.id, domain, domain === tenant.primaryDomain],
    )
    if (res.rowCount === 0) {
      const own = await db.query(
        `select 1 from ${domains} where tenant_id = $1::${idType} and domain = $2`,
        [tenant.id, domain],
      )
      if (own.rows.length === 0) skippedDomains.push(domain)
    }
  }
  return { created, skippedDomains }
}
