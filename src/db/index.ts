export {
  assertBindingOption,
  BINDING_OPTIONS,
  type BindingMode,
  type BindingOption,
  bindStatement,
} from './binding.js'
export { describePool, explainUnreachable, isUnreachable } from './connect.js'
export {
  assertSafeRuntimeRole,
  inspectRuntimeRole,
  type RuntimeRoleFacts,
  runtimeRoleProblems,
} from './role-check.js'
export { savepointTransactions } from './savepoint-transactions.js'
export { TenantBindingDialect } from './tenant-dialect.js'
export type { TenantBindingConfig } from './tenant-driver.js'
export { acquire, type DatabaseTimeouts, resolveTimeouts, withTimeouts } from './unavailable.js'
