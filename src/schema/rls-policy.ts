import { InvalidInputError } from '../errors/index.js'
import { DEFAULTS } from '../sql/defaults.js'
import { assertTenantIdType, type TenantIdType } from '../tenants/id-types.js'

/**
 * The transaction-local setting that carries the current tenant to PostgreSQL.
 *
 * @example
 * ```ts
 * `select current_setting('${RLS_SETTING}', true)`
 * ```
 */
export const RLS_SETTING = 'rowtenancy.tenant_id'

/**
 * The name rowtenancy gives its isolation policy on every tenant-aware table.
 *
 * @example
 * ```ts
 * `select * from pg_policies where policyname = '${RLS_POLICY_NAME}'`
 * ```
 */
export const RLS_POLICY_NAME = 'rowtenancy_tenant_isolation'

/**
 * A table, optionally schema-qualified.
 *
 * @example
 * ```ts
 * const t: TableRef = { schema: 'public', name: 'accounts' }
 * ```
 */
export interface TableRef {
  readonly schema?: string | undefined
  readonly name: string
}

/**
 * The predicate of the isolation policy, as data:
 * `<column> = nullif(current_setting('<setting>', true), '')::<type>`.
 *
 * @example
 * ```ts
 * const p: TenantPredicate = { kind: 'tenant-equals-setting', column: 'tenant_id', setting: RLS_SETTING, type: 'bigint' }
 * ```
 */
export interface TenantPredicate {
  /** `tenant-equals-sealed`: compared against the sealed binding (see `rls-sealed.ts`). */
  readonly kind: 'tenant-equals-setting' | 'tenant-equals-sealed'
  readonly column: string
  readonly setting: string
  readonly type: TenantIdType
}

/**
 * One row-level security policy as a typed object (Drizzle's `PgPolicyConfig`
 * style); {@link renderRlsEnable} turns it into SQL.
 *
 * @example
 * ```ts
 * const policy: RlsPolicy = tenantPolicy('accounts')
 * ```
 */
export interface RlsPolicy {
  readonly name: string
  readonly table: TableRef
  readonly as: 'permissive'
  readonly for: 'all'
  readonly to: 'public'
  readonly using: TenantPredicate
  readonly withCheck: TenantPredicate
}

/**
 * Options shared by the policy builders.
 *
 * @example
 * ```ts
 * const opts: TenantPolicyOptions = { tenantColumn: 'org_id', tenantIdType: 'uuid' }
 * ```
 */
export interface TenantPolicyOptions {
  /** The tenant column; `tenant_id` by default. */
  readonly tenantColumn?: string | undefined
  /** The SQL type of the tenant column; `bigint` by default. */
  readonly tenantIdType?: TenantIdType | undefined
  /**
   * Sealed policies: honour only a tenant bound by rowtenancy's sealed binding
   * (`binding: 'sealed'`), never a value set with set_config / SET. Needs
   * `installSeal` first; not on Citus.
   */
  readonly sealed?: boolean | undefined
}

/**
 * Reads `'accounts'`, `'app.accounts'` or `{ schema, name }` into a {@link TableRef}.
 *
 * @example
 * ```ts
 * parseTableRef('app.accounts') // { schema: 'app', name: 'accounts' }
 * ```
 */
export function parseTableRef(table: string | TableRef): TableRef {
  if (typeof table !== 'string') {
    if (!table || typeof table.name !== 'string' || table.name.length === 0) {
      throw new InvalidInputError('A table must be a name or { schema?, name }.')
    }
    return Object.freeze({ schema: table.schema, name: table.name })
  }
  const parts = table.split('.')
  if (parts.length === 1 && parts[0]) return Object.freeze({ name: parts[0] })
  if (parts.length === 2 && parts[0] && parts[1]) {
    return Object.freeze({ schema: parts[0], name: parts[1] })
  }
  throw new InvalidInputError(
    `Cannot read the table name ${JSON.stringify(table)}: write "table" or "schema.table", ` +
      'or pass { schema, name } for names that contain a dot.',
  )
}

/**
 * Builds the isolation policy of one tenant-aware table: permissive, for all
 * commands, to everyone, with the same tenant predicate for USING and WITH CHECK.
 *
 * @example
 * ```ts
 * tenantPolicy('accounts', { tenantIdType: 'uuid' }).using.type // 'uuid'
 * ```
 */
export function tenantPolicy(
  table: string | TableRef,
  options: TenantPolicyOptions = {},
): RlsPolicy {
  const type = options.tenantIdType ?? DEFAULTS.tenantIdType
  assertTenantIdType(type)
  const predicate: TenantPredicate = Object.freeze({
    kind: options.sealed === true ? 'tenant-equals-sealed' : 'tenant-equals-setting',
    column: options.tenantColumn ?? DEFAULTS.tenantColumn,
    setting: RLS_SETTING,
    type,
  })
  return Object.freeze({
    name: RLS_POLICY_NAME,
    table: parseTableRef(table),
    as: 'permissive',
    for: 'all',
    to: 'public',
    using: predicate,
    withCheck: predicate,
  })
}
