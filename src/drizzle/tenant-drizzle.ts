import type { DrizzleConfig } from 'drizzle-orm'
import { drizzle, type NodePgDatabase } from 'drizzle-orm/node-postgres'
import type { AuditedPool } from '../pg/audited-pool.js'
import type { TenantPool } from '../pg/tenant-pool.js'
import type { Tenancy } from '../tenancy/create-tenancy.js'
import { allObjectsPool, tenantPoolOf } from '../tenancy/orm-pools.js'

/**
 * A Drizzle database on a tenancy's audited cross-tenant pool.
 *
 * @example
 * ```ts
 * const admin: AllObjectsDrizzle<typeof schema> = db.allObjects('monthly revenue report')
 * ```
 */
export type AllObjectsDrizzle<TSchema extends Record<string, unknown>> = NodePgDatabase<TSchema> & {
  $client: AuditedPool
}

/**
 * A Drizzle database on a tenancy's {@link TenantPool}, with the audited
 * cross-tenant door beside it.
 *
 * @example
 * ```ts
 * const db: TenantDrizzle<typeof schema> = tenantDrizzle(tenancy, { schema })
 * ```
 */
export type TenantDrizzle<TSchema extends Record<string, unknown>> = NodePgDatabase<TSchema> & {
  $client: TenantPool
  /**
   * An unscoped Drizzle database on the tenancy's `adminPool` for deliberate
   * cross-tenant work: every statement is written to the audit log with
   * `reason` and the actor.
   */
  allObjects(reason: string, options?: { actor?: string | undefined }): AllObjectsDrizzle<TSchema>
}

/**
 * Options of {@link tenantDrizzle}: Drizzle's own config, plus `requireTenant`.
 *
 * @example
 * ```ts
 * const options: TenantDrizzleOptions<typeof schema> = { schema, requireTenant: true }
 * ```
 */
export type TenantDrizzleOptions<TSchema extends Record<string, unknown>> =
  DrizzleConfig<TSchema> & {
    /** Throw `MissingTenantError` for a statement with no tenant in context (default: run it unbound, RLS shows no rows). */
    readonly requireTenant?: boolean | undefined
  }

/**
 * A Drizzle database (node-postgres driver) whose statements are bound to the
 * current tenant for RLS by the tenancy's {@link TenantPool}: a lone query in
 * one round trip with its binding; `db.transaction(fn)` bound once after its
 * BEGIN, nested transactions are savepoints; nothing carried to the next
 * checkout. Runs on the tenancy's runtime pool (role-checked on first use).
 *
 * @example
 * ```ts
 * const db = tenantDrizzle(tenancy, { schema })
 * await runWithTenant(7, () => db.select().from(accounts)) // tenant 7's rows, by RLS
 * await db.allObjects('export for the auditors').select().from(accounts) // every tenant, audited
 * ```
 */
export function tenantDrizzle<TSchema extends Record<string, unknown> = Record<string, never>>(
  tenancy: Tenancy,
  options: TenantDrizzleOptions<TSchema> = {},
): TenantDrizzle<TSchema> {
  const { requireTenant, ...config } = options
  const pool = tenantPoolOf(tenancy, { requireTenant })
  const db = drizzle({ ...config, client: pool }) as NodePgDatabase<TSchema> & {
    $client: TenantPool
  }
  const allObjects = (reason: string, callOptions: { actor?: string | undefined } = {}) =>
    drizzle({
      ...config,
      client: allObjectsPool(tenancy, reason, callOptions),
    }) as AllObjectsDrizzle<TSchema>
  return Object.assign(db, { allObjects })
}
