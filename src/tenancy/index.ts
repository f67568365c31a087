export { createTenancy, type Tenancy } from './create-tenancy.js'
export type {
  HybridOptions,
  ResolvedTenancyOptions,
  TenancyAuditOptions,
  TenancyOptions,
  TenancyPool,
} from './options.js'
export { allObjectsPool, tenantPoolOf } from './orm-pools.js'
export {
  type PlacementOptions,
  type ResolvedPlacement,
  RoutingPool,
  type TenancyDatabase,
} from './placement.js'
