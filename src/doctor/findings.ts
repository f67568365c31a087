/**
 * Every finding code `rowtenancy doctor` may report. Stable: CI scripts and
 * allow-lists match on them.
 */
export type FindingCode =
  | 'RLS_NOT_ENABLED'
  | 'RLS_NOT_FORCED'
  | 'RLS_POLICY_MISSING'
  | 'RLS_POLICY_PERMISSIVE'
  | 'ROLE_MISSING'
  | 'ROLE_SUPERUSER'
  | 'ROLE_BYPASSRLS'
  | 'ROLE_REPLICATION'
  | 'ROLE_OWNS_TABLE'
  | 'ROLE_MEMBER_OF_UNSAFE'
  | 'ROLE_CREATEROLE'
  | 'ROLE_CAN_CREATE_TEMP'
  | 'ROLE_CAN_CREATE_IN_SCHEMA'
  | 'ROLE_TABLE_PRIVILEGE'
  | 'ROLE_WRITES_DIRECTORY'
  | 'ROLE_SEQUENCE_UPDATE'
  | 'LARGE_OBJECT_OUTSIDE_RLS'
  | 'PRIMARY_KEY_WITHOUT_TENANT'
  | 'UNIQUE_WITHOUT_TENANT'
  | 'INDEX_NOT_TENANT_LEADING'
  | 'FOREIGN_KEY_WITHOUT_TENANT'
  | 'FOREIGN_KEY_FROM_SHARED_TABLE'
  | 'FOREIGN_KEY_ACTION_ACROSS_TENANTS'
  | 'VIEW_WITHOUT_SECURITY_INVOKER'
  | 'RULE_OVER_TENANT_TABLE'
  | 'FOREIGN_TABLE_WITH_TENANT_COLUMN'
  | 'SECURITY_DEFINER_FUNCTION'
  | 'SECURITY_DEFINER_DYNAMIC_SQL'
  | 'SECURITY_DEFINER_SEARCH_PATH'
  | 'NO_TENANT_TABLES'
  | 'TENANT_COLUMN_KEYS_OTHER_TABLE'
  | 'TENANT_COLUMN_MISSING'
  | 'TENANT_COLUMN_NULLABLE'
  | 'TENANT_COLUMN_TYPE'
  | 'TENANT_COLUMN_COLLATION'
  | 'CITUS_CANNOT_DISTRIBUTE'
  | 'CITUS_NOT_DISTRIBUTED'
  | 'CITUS_NOT_COLOCATED'
  | 'CITUS_SHARED_NOT_REFERENCE'
  | 'CITUS_BINDING_NOT_PROPAGATED'

/**
 * One problem `rowtenancy doctor` found: a stable code, the database object,
 * what is wrong, and how to fix it.
 *
 * @example
 * ```ts
 * const f: Finding = {
 *   code: 'RLS_NOT_FORCED', severity: 'error', object: 'public.accounts',
 *   message: 'Row level security is not forced: the owner bypasses the policy.',
 *   fix: 'rowtenancy rls enable (or: alter table "public"."accounts" force row level security)',
 * }
 * ```
 */
export interface Finding {
  readonly code: FindingCode
  /** `error`: tenants are not isolated; `warning`: isolation holds but something is off (speed, Citus). */
  readonly severity: 'error' | 'warning'
  /** The object, e.g. `public.accounts`, `public.accounts.accounts_email_key`, `role app_runtime`. */
  readonly object: string
  readonly message: string
  readonly fix: string
}

/**
 * What `runDoctor` returns.
 *
 * @example
 * ```ts
 * const report = await runDoctor(pool, { runtimeRole: 'app_runtime' })
 * if (!report.ok) process.exitCode = 1
 * ```
 */
export interface DoctorReport {
  /**
   * True when there are no findings. Never true when no tenant-aware table was
   * checked: that is the finding `NO_TENANT_TABLES`.
   */
  readonly ok: boolean
  readonly findings: readonly Finding[]
  /** What was checked. */
  readonly checked: {
    readonly tables: readonly string[]
    readonly tenantColumn: string
    readonly tenantIdType: string
    readonly runtimeRole: string | null
  }
  /** Checks that did not run, and why. */
  readonly skipped: readonly string[]
}

/** @internal */
export function finding(
  code: FindingCode,
  object: string,
  message: string,
  fix: string,
  severity: 'error' | 'warning' = 'error',
): Finding {
  return Object.freeze({ code, severity, object, message, fix })
}
