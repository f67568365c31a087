/**
 * `rowtenancy`: the tenant context, `createTenancy`, the tenant store, the
 * errors, configuration types, Row Level Security helpers and the doctor.
 * Every name here is listed by hand; `test/public-entries.test.ts` pins them.
 *
 * @module
 */
export {
  CONFIG_FILES,
  CONFIG_KEYS,
  type ConfigKey,
  type LoadConfigOptions,
  loadConfig,
  type RowtenancyConfig,
} from '../config/index.js'
export {
  type CrossTenantScope,
  clearCurrentTenant,
  crossTenantScope,
  currentTenant,
  onCrossTenantScope,
  requireTenant,
  runWithTenant,
  setCurrentTenant,
  type TenantId,
  tryCurrentTenant,
  withoutTenant,
} from '../context/index.js'
export {
  assertSafeRuntimeRole,
  type BindingMode,
  type BindingOption,
  type DatabaseTimeouts,
  inspectRuntimeRole,
  type RuntimeRoleFacts,
  runtimeRoleProblems,
  type TenantBindingConfig,
} from '../db/index.js'
export {
  type DoctorOptions,
  type DoctorReport,
  type Finding,
  type FindingCode,
  runDoctor,
} from '../doctor/index.js'
export {
  AuditWriteError,
  ConfigError,
  CrossTenantWriteError,
  DatabaseUnavailableError,
  DatabaseUnreachableError,
  DuplicateTenantError,
  InvalidInputError,
  InvalidTenantIdError,
  LifecycleError,
  MigrationError,
  MissingTenantError,
  TenancyError,
  type TenancyErrorCode,
  TenantForbiddenError,
  TenantMigratingError,
  TenantNotFoundError,
  TenantSuspendedError,
  type UnavailableReason,
  UnsafeRoleError,
  UnsupportedQueryError,
} from '../errors/index.js'
export {
  disableRls,
  discoverTenantTables,
  enableRls,
  type RlsApplyResult,
  type RlsTableStatus,
  rlsStatus,
  type TableKeyedElsewhere,
  tablesKeyedElsewhere,
} from '../schema/rls-apply.js'
export {
  RLS_POLICY_NAME,
  RLS_SETTING,
  type RlsPolicy,
  type TableRef,
  type TenantPolicyOptions,
  type TenantPredicate,
  tenantPolicy,
} from '../schema/rls-policy.js'
export { renderRlsDisable, renderRlsEnable, rlsSql } from '../schema/rls-render.js'
export { installSeal, renderSealSetup, SEAL_SETTING } from '../schema/rls-sealed.js'
export {
  grantRuntimeRole,
  type RuntimeRoleOptions,
  type RuntimeRoleResult,
  runtimeRoleGrantsSql,
} from '../schema/roles.js'
export {
  type ConnectableQueryable,
  inTransaction,
  type Queryable,
  quoteIdent,
  quoteLiteral,
  quoteQualified,
} from '../sql/index.js'
export {
  allObjectsPool,
  createTenancy,
  type HybridOptions,
  type PlacementOptions,
  type ResolvedPlacement,
  type ResolvedTenancyOptions,
  RoutingPool,
  type Tenancy,
  type TenancyAuditOptions,
  type TenancyDatabase,
  type TenancyOptions,
  type TenancyPool,
  tenantPoolOf,
} from '../tenancy/index.js'
export {
  assertDatabaseName,
  assertTenantIdType,
  DEFAULT_DATABASE,
  existingIdType,
  installPlacements,
  installTenantTables,
  type NewTenant,
  normalizeDomain,
  normalizeSlug,
  PLACEMENTS_TABLE,
  PlacementMap,
  type PlacementMapOptions,
  type PlacementTableOptions,
  parseTenantId,
  placementTableDdl,
  setPlacement,
  slugify,
  TENANT_ID_TYPES,
  type Tenant,
  type TenantIdType,
  type TenantStatus,
  TenantStore,
  type TenantStoreOptions,
  type TenantTablesOptions,
  tenantTablesDdl,
  tryParseTenantId,
} from '../tenants/index.js'
