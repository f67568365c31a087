export {
  type ConnectableQueryable,
  inTransaction,
  type Queryable,
} from '../sql/queryable.js'
export {
  assertTenantIdType,
  parseTenantId,
  TENANT_ID_TYPES,
  type TenantIdType,
  tryParseTenantId,
} from './id-types.js'
export {
  existingIdType,
  installTenantTables,
  type TenantTablesOptions,
  tenantTablesDdl,
} from './install.js'
export { normalizeDomain, normalizeSlug, slugify } from './normalize.js'
export {
  assertDatabaseName,
  DEFAULT_DATABASE,
  installPlacements,
  PLACEMENTS_TABLE,
  PlacementMap,
  type PlacementMapOptions,
  type PlacementTableOptions,
  placementTableDdl,
  setPlacement,
} from './placements.js'
export {
  type NewTenant,
  type Tenant,
  type TenantStatus,
  TenantStore,
  type TenantStoreOptions,
} from './tenant-store.js'
