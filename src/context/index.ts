export {
  assertTenantIdShape,
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
} from './tenant-context.js'
