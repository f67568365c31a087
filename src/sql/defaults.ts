/**
 * The one table of defaults every layer reads when an option is left out: the
 * tenant column, the SQL type of tenant ids, and the schema that holds the
 * shared tables and the `tenants` table.
 */
export const DEFAULTS = Object.freeze({
  /** The column that carries the tenant in every tenant-aware table. */
  tenantColumn: 'tenant_id',
  /** The SQL type of `tenants.id` and of every tenant column. */
  tenantIdType: 'bigint',
  /** The schema of the shared (target) tables and of the `tenants` table. */
  schema: 'public',
  /**
   * The longest the CLI's `tenants`, `rls` and `init` transactions wait for a
   * lock held by another session, ms (`--lock-timeout`), before they give up and
   * roll back (`tenants export|import|erase|move`: each of their transactions).
   */
  lockTimeoutMs: 10_000,
} as const)
