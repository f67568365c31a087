export * from './config/index.js'
export * from './context/index.js'
export * from './db/index.js'
export {
  type DoctorOptions,
  type DoctorReport,
  type Finding,
  type FindingCode,
  runDoctor,
} from './doctor/index.js'
export * from './errors/index.js'
export { quoteIdent, quoteLiteral, quoteQualified } from './schema/identifiers.js'
export {
  disableRls,
  discoverTenantTables,
  enableRls,
  type RlsApplyResult,
  type RlsTableStatus,
  rlsStatus,
} from './schema/rls-apply.js'
export {
  RLS_POLICY_NAME,
  RLS_SETTING,
  type RlsPolicy,
  type TableRef,
  type TenantPolicyOptions,
  type TenantPredicate,
  tenantPolicy,
} from './schema/rls-policy.js'
export { renderRlsDisable, renderRlsEnable, rlsSql } from './schema/rls-render.js'
export {
  grantRuntimeRole,
  type RuntimeRoleOptions,
  type RuntimeRoleResult,
  runtimeRoleGrantsSql,
} from './schema/roles.js'
export {
  createTenancy,
  type PlacementOptions,
  type ResolvedPlacement,
  type ResolvedTenancyOptions,
  RoutingPool,
  type Tenancy,
  type TenancyAuditOptions,
  type TenancyDatabase,
  type TenancyOptions,
  type TenancyPool,
} from './tenancy/index.js'
export * from './tenants/index.js'
