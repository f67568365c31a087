export { forceRlsSql } from './force-rls.js'
export { tenantColumn, tenantIsolationPolicy, tenantPrimaryKey } from './table-helpers.js'
export {
  type AllObjectsDrizzle,
  type TenantDrizzle,
  type TenantDrizzleOptions,
  tenantDrizzle,
} from './tenant-drizzle.js'
