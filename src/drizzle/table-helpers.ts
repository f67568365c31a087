import { sql } from 'drizzle-orm'
import {
  type AnyPgColumn,
  bigint,
  integer,
  type PgPolicy,
  pgPolicy,
  primaryKey,
  text,
  uuid,
} from 'drizzle-orm/pg-core'
import { currentTenant } from '../context/index.js'
import { InvalidTenantIdError } from '../errors/index.js'
import { tenantPolicy as policyModel, RLS_POLICY_NAME } from '../schema/rls-policy.js'
import { renderPredicate } from '../schema/rls-render.js'
import { DEFAULTS } from '../sql/defaults.js'
import { parseTenantId, type TenantIdType } from '../tenants/id-types.js'

/**
 * The tenant column of a tenant-aware Drizzle table: `NOT NULL`, of the
 * tenancy's id type (`bigint` as a JS number by default), filled on insert
 * with the current tenant when the insert names none (MissingTenantError with
 * no tenant in context; InvalidTenantIdError for a current tenant that is not
 * of the column's type, or, for the integer types, not a safe JS integer, so a
 * large bigint id is never rounded to a neighbour's). RLS WITH CHECK refuses
 * any other tenant's id.
 *
 * @example
 * ```ts
 * export const accounts = pgTable('accounts', {
 *   tenantId: tenantColumn(),
 *   id: bigint('id', { mode: 'number' }).notNull(),
 * }, (t) => [tenantPrimaryKey(t.tenantId, t.id), tenantIsolationPolicy()])
 * ```
 */
export function tenantColumn(options: { name?: string; type?: TenantIdType } = {}) {
  const name = options.name ?? DEFAULTS.tenantColumn
  switch (options.type ?? DEFAULTS.tenantIdType) {
    case 'bigint':
      return bigint(name, { mode: 'number' })
        .notNull()
        .$defaultFn(() => currentNumericTenant('bigint'))
    case 'integer':
      return integer(name)
        .notNull()
        .$defaultFn(() => currentNumericTenant('integer'))
    case 'uuid':
      return uuid(name)
        .notNull()
        .$defaultFn(() => parseTenantId('uuid', currentTenant()))
    case 'text':
      return text(name)
        .notNull()
        .$defaultFn(() => parseTenantId('text', currentTenant()))
  }
}

/** The current tenant as the JS number an integer tenant column holds, refused when not exact. */
function currentNumericTenant(type: 'bigint' | 'integer'): number {
  const id = parseTenantId(type, currentTenant())
  const n = Number(id)
  if (!Number.isSafeInteger(n)) {
    throw new InvalidTenantIdError(
      id,
      `a safe JS integer: tenantColumn() holds the tenant as a number, which cannot hold ${id} exactly ` +
        "(declare it as bigint('tenant_id', { mode: 'bigint' }) and set it from currentTenant())",
    )
  }
  return n
}

/**
 * The composite primary key of a tenant-aware table: `(tenant_id, ...columns)`,
 * the tenant column first (what Citus co-location and tenant-paired foreign keys need).
 *
 * @example
 * ```ts
 * (t) => [tenantPrimaryKey(t.tenantId, t.id)] // primary key ("tenant_id", "id")
 * ```
 */
export function tenantPrimaryKey(tenant: AnyPgColumn, ...columns: AnyPgColumn[]) {
  return primaryKey({ columns: [tenant, ...columns] })
}

/**
 * The RLS policy `rowtenancy rls` creates, as a Drizzle `pgPolicy`: a table
 * holding it gets ENABLE ROW LEVEL SECURITY and exactly this policy from
 * `drizzle-kit generate`. drizzle-kit cannot express FORCE ROW LEVEL SECURITY
 * (needed when the tables' owner also runs queries): add
 * {@link forceRlsSql} in a custom migration, or run `rowtenancy rls`.
 *
 * @example
 * ```ts
 * tenantIsolationPolicy()
 * // CREATE POLICY "rowtenancy_tenant_isolation" ON "accounts" AS PERMISSIVE FOR ALL TO public
 * //   USING ("tenant_id" = nullif(current_setting('rowtenancy.tenant_id', true), '')::bigint)
 * //   WITH CHECK (...the same...)
 * ```
 */
export function tenantIsolationPolicy(
  options: { tenantColumn?: string; tenantIdType?: TenantIdType } = {},
): PgPolicy {
  const policy = policyModel('t', options)
  return pgPolicy(RLS_POLICY_NAME, {
    as: policy.as,
    for: policy.for,
    to: policy.to,
    using: sql.raw(renderPredicate(policy.using)),
    withCheck: sql.raw(renderPredicate(policy.withCheck)),
  })
}
