import { MigrationError } from '../errors/index.js'
import type { Queryable } from '../sql/queryable.js'
import { quoteLiteral, quoteQualified } from '../sql/quote.js'
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
  const { rows } = await db.query(`select 1 from ${tenants} where id = $1::${idType}`, [tenant.id])
  // `on conflict do nothing`: a slug taken meanwhile by a tenant copied in parallel waits for it, then falls back.
  const inserted =
    rows.length === 0 &&
    ((
      await db.query(
        `insert into ${tenants} (id, slug, name) values ($1::${idType}, $2, $3) on conflict do nothing`,
        [tenant.id, tenant.slug, tenant.name],
      )
    ).rowCount ?? 0) > 0
  return finishTenantRow(db, schema, idType, tenant, { existed: rows.length > 0, inserted })
}

/**
 * The first step of {@link ensureTenantRow} as ONE statement without parameters (the
 * values are quoted literals), to send with others in one round trip: inserts the
 * tenant under its legacy slug unless its id is there; one row, `existed` and
 * `inserted`. Hand that row to {@link finishTenantRow}. With `failWhenTaken`, the statement
 * fails (division by zero) when the row is neither there nor inserted (its slug is taken).
 *
 * @example
 * ```ts
 * tenantRowStatement('public', 'bigint', tenant)
 * // 'with e as (select exists (select 1 from "public"."tenants" where id = \'7\'::bigint) as existed), i as (insert ...) select ...'
 * ```
 * @internal
 */
export function tenantRowStatement(
  schema: string,
  idType: TenantIdType,
  tenant: SourceTenant,
  { failWhenTaken = false }: { failWhenTaken?: boolean } = {},
): string {
  const tenants = quoteQualified(schema, 'tenants')
  const id = `${quoteLiteral(tenant.id)}::${idType}`
  // `on conflict do nothing`: a slug taken meanwhile by a tenant copied in parallel waits for it, then falls back.
  const result = 'select (select existed from e) as existed, exists (select 1 from i) as inserted'
  return (
    `with e as (select exists (select 1 from ${tenants} where id = ${id}) as existed), ` +
    `i as (insert into ${tenants} (id, slug, name) select ${id}, ${quoteLiteral(tenant.slug)}, ${quoteLiteral(tenant.name)} ` +
    'where not (select existed from e) on conflict do nothing returning 1) ' +
    (failWhenTaken
      ? // division by zero when the slug was taken: the statement fails rather than going on without the row
        `select r.existed, r.inserted from (${result}) r where 1 / (case when r.existed or r.inserted then 1 else 0 end) = 1`
      : result)
  )
}

/**
 * The rest of {@link ensureTenantRow} after {@link tenantRowStatement} returned
 * `first`: the slug with the id as suffix when the legacy slug was taken, then the
 * domains.
 *
 * @example
 * ```ts
 * await finishTenantRow(client, 'public', 'bigint', tenant, { existed: false, inserted: true })
 * ```
 * @internal
 */
export async function finishTenantRow(
  db: Queryable,
  schema: string,
  idType: TenantIdType,
  tenant: SourceTenant,
  first: { existed?: boolean; inserted?: boolean } | undefined,
): Promise<{ created: boolean; skippedDomains: string[] }> {
  const tenants = quoteQualified(schema, 'tenants')
  const domains = quoteQualified(schema, 'tenant_domains')
  let created = first?.inserted === true
  if (first?.existed !== true && !created) {
    const suffix = `-${
      tenant.id
        .replace(/[^a-z0-9]+/gi, '')
        .toLowerCase()
        .slice(0, 20) || 'x'
    }`
    const slug = `${tenant.slug.slice(0, 63 - suffix.length).replace(/-+$/, '')}${suffix}`
    const again = await db.query(
      `insert into ${tenants} (id, slug, name) values ($1::${idType}, $2, $3) on conflict do nothing`,
      [tenant.id, slug, tenant.name],
    )
    if (again.rowCount === 0) {
      throw new MigrationError(
        `Cannot create tenant ${tenant.id}: the slugs ${tenant.slug} and ${slug} are both taken. ` +
          'Create the tenant yourself (rowtenancy tenants create --id ...) and rerun.',
      )
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
