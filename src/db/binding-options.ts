import { ConfigError } from '../errors/index.js'
import { assertSealKey } from '../schema/rls-sealed.js'
import { DEFAULTS } from '../sql/defaults.js'
import { assertTenantIdType, type TenantIdType } from '../tenants/id-types.js'
import { assertBindingOption, type BindingOption } from './binding.js'
import { type DatabaseTimeouts, resolveTimeouts } from './unavailable.js'

/**
 * The options of binding a tenant to a transaction, shared by every API that
 * binds one (`createTenancy`, the binding dialect, `TenantPool`,
 * `withTenantClient`): one definition of their names, defaults and validation.
 */
export interface BindingOptions {
  /** The SQL type of tenant ids; `bigint` by default. */
  readonly tenantIdType?: TenantIdType | undefined
  /** The tenant column; `tenant_id` by default (the start-up role check looks for it). */
  readonly tenantColumn?: string | undefined
  /** How the tenant is bound to each transaction: `auto` (default: SET LOCAL on Citus, else set_config), `set_config`, `set_local`, `sealed` (with `sealKey`). */
  readonly binding?: BindingOption | undefined
  /**
   * The secret of `binding: 'sealed'` (required there): the same string
   * `rowtenancy rls enable --sealed` installed (ROWTENANCY_SEAL_KEY). The runtime
   * role cannot read it in the database; keep it out of SQL and logs.
   */
  readonly sealKey?: string | undefined
  /** Start even when the runtime role bypasses RLS (superuser, owner, BYPASSRLS), with a loud warning instead of `UnsafeRoleError`. */
  readonly allowUnsafeRole?: boolean | undefined
  /**
   * Prepare the `set_config` bind once per connection (as `rowtenancy_bind`) and
   * send only Bind + Execute of it afterwards (default true; SET LOCAL binding
   * ignores it). Where a pooler swaps or resets the server session, the first
   * "prepared statement does not exist" error switches to the unnamed bind by
   * itself. `false`: always the unnamed bind.
   */
  readonly prepareBind?: boolean | undefined
  /**
   * How long a checkout waits for a pooled connection (`acquireMs`, 5000 by
   * default: a full pool fails fast with `DatabaseUnavailableError`), and the
   * `statement_timeout` / `lock_timeout` / `idle_in_transaction_session_timeout`
   * of every tenant transaction (`statementMs`, `lockMs`, `idleInTransactionMs`).
   */
  readonly timeouts?: DatabaseTimeouts | undefined
}

/** {@link BindingOptions} after validation, with every default filled in. */
export interface ResolvedBindingOptions {
  readonly tenantIdType: TenantIdType
  readonly tenantColumn: string
  readonly binding: BindingOption
  readonly sealKey: string | undefined
  readonly allowUnsafeRole: boolean
  readonly prepareBind: boolean
  readonly timeouts: Readonly<DatabaseTimeouts> & { readonly acquireMs: number }
}

/** The names of the {@link BindingOptions}, for the unknown-option checks of the APIs that take them. */
export const BINDING_OPTION_NAMES: readonly (keyof BindingOptions)[] = Object.freeze([
  'tenantIdType',
  'tenantColumn',
  'binding',
  'sealKey',
  'allowUnsafeRole',
  'prepareBind',
  'timeouts',
])

/** The defaults of the {@link BindingOptions} (`DEFAULTS` for the tenant column and id type). */
export const BINDING_DEFAULTS = Object.freeze({
  tenantIdType: DEFAULTS.tenantIdType,
  tenantColumn: DEFAULTS.tenantColumn,
  binding: 'auto',
  allowUnsafeRole: false,
  prepareBind: true,
} as const)

/**
 * Validates the binding options (id type, binding, the seal key of `sealed`,
 * booleans, timeouts) and fills in the defaults; a bad value is a `ConfigError`
 * that names the option.
 */
export function resolveBindingOptions(options: BindingOptions): ResolvedBindingOptions {
  const tenantIdType = options.tenantIdType ?? BINDING_DEFAULTS.tenantIdType
  const binding = options.binding ?? BINDING_DEFAULTS.binding
  asConfigError(() => {
    assertTenantIdType(tenantIdType)
    assertBindingOption(binding)
    if (binding === 'sealed') assertSealKey(options.sealKey)
  })
  for (const key of ['allowUnsafeRole', 'prepareBind'] as const) {
    if (options[key] !== undefined && typeof options[key] !== 'boolean') {
      throw new ConfigError(`${key} must be true or false, got ${JSON.stringify(options[key])}.`)
    }
  }
  return Object.freeze({
    tenantIdType,
    tenantColumn: options.tenantColumn ?? BINDING_DEFAULTS.tenantColumn,
    binding,
    sealKey: options.sealKey,
    allowUnsafeRole: options.allowUnsafeRole ?? BINDING_DEFAULTS.allowUnsafeRole,
    prepareBind: options.prepareBind ?? BINDING_DEFAULTS.prepareBind,
    timeouts: resolveTimeouts(options.timeouts),
  })
}

/** Only the {@link BindingOptions} of `options` (to hand resolved options on to another binding API). */
export function bindingOptionsOf(options: ResolvedBindingOptions): ResolvedBindingOptions {
  const { tenantIdType, tenantColumn, binding, sealKey, allowUnsafeRole, prepareBind, timeouts } =
    options
  return { tenantIdType, tenantColumn, binding, sealKey, allowUnsafeRole, prepareBind, timeouts }
}

function asConfigError(check: () => void): void {
  try {
    check()
  } catch (err) {
    throw new ConfigError((err as Error).message, { cause: err })
  }
}
