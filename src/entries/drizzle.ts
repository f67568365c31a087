/**
 * `rowtenancy/drizzle`: Drizzle (node-postgres driver) on the tenant pool,
 * the audited cross-tenant door, and table helpers whose policy matches
 * `rowtenancy rls`.
 *
 * @module
 */
export {
  type AllObjectsDrizzle,
  forceRlsSql,
  type TenantDrizzle,
  type TenantDrizzleOptions,
  tenantColumn,
  tenantDrizzle,
  tenantIsolationPolicy,
  tenantPrimaryKey,
} from '../drizzle/index.js'
