export type { CitusTable, Distribution, ForeignKey, TableKey } from './catalog.js'
export { citusInstalled, loadCitusTables } from './catalog.js'
export type { DistributeResult } from './distribute.js'
export { distribute } from './distribute.js'
export type { HotTenant, IsolateOptions, IsolateResult, TenantPlacement } from './operate.js'
export { hotTenants, isolateTenant, tenantPlacement } from './operate.js'
export type {
  DistributeOptions,
  DistributeRefusal,
  DistributeStep,
  DistributionPlan,
} from './plan.js'
export { planDistribution } from './plan.js'
