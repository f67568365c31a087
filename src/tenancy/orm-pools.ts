import type pg from 'pg'
import { AuditWriter } from '../audit/index.js'
import { tryCurrentTenant } from '../context/index.js'
import { InvalidInputError } from '../errors/index.js'
import { AuditedPool } from '../pg/audited-pool.js'
import { TenantPool } from '../pg/tenant-pool.js'
import { parseTenantId } from '../tenants/id-types.js'
import { auditWriterOf, type Tenancy } from './create-tenancy.js'

const tenantPools = new WeakMap<Tenancy, Map<boolean, TenantPool>>()

/**
 * The {@link TenantPool} of a tenancy: its runtime pool, id type, tenant
 * column, binding and role-check settings; one per tenancy (and per
 * `requireTenant`), sharing the tenancy's connections (its `end()` leaves them
 * to `tenancy.destroy()`). Hand it to any library that takes a `pg.Pool`.
 *
 * @example
 * ```ts
 * const pool = tenantPoolOf(tenancy, { requireTenant: true })
 * const knex = Knex({ client: 'pg', connectionPool: pool })
 * ```
 */
export function tenantPoolOf(
  tenancy: Tenancy,
  options: { requireTenant?: boolean | undefined } = {},
): TenantPool {
  const requireTenant = options.requireTenant === true
  let byRequire = tenantPools.get(tenancy)
  if (!byRequire) {
    byRequire = new Map()
    tenantPools.set(tenancy, byRequire)
  }
  let pool = byRequire.get(requireTenant)
  if (!pool) {
    const o = tenancy.options
    pool = new TenantPool({
      pool: o.pool as pg.Pool,
      tenantIdType: o.tenantIdType,
      tenantColumn: o.tenantColumn,
      binding: o.binding,
      allowUnsafeRole: o.allowUnsafeRole,
      sealKey: o.sealKey,
      prepareBind: o.prepareBind,
      requireTenant,
      endPool: false,
      acquireMs: o.timeouts.acquireMs,
      ...(o.serving ? { serving: { schema: o.serving.schema } } : {}),
    })
    byRequire.set(requireTenant, pool)
  }
  return pool
}

const writers = new WeakMap<Tenancy, AuditWriter>()

/**
 * A `pg.Pool` for deliberate cross-tenant work through any pg-based library:
 * the tenancy's `adminPool`, every statement written to its audit log with
 * `reason` and the actor (as `tenancy.allObjects` does for Kysely).
 *
 * @example
 * ```ts
 * const pool = allObjectsPool(tenancy, 'monthly revenue report', { actor: 'alice' })
 * await pool.query('select tenant_id, sum(amount) from transactions group by 1')
 * ```
 */
export function allObjectsPool(
  tenancy: Tenancy,
  reason: string,
  options: { actor?: string | undefined } = {},
): AuditedPool {
  if (typeof reason !== 'string' || reason.trim().length === 0) {
    throw new InvalidInputError(
      'allObjects(reason) needs a non-empty reason: it is written to the audit log with every statement.',
    )
  }
  const o = tenancy.options
  // The tenancy's own writer records on its audit pool: a record written on the audited
  // connection could be taken back by a raw rollback there.
  let writer = auditWriterOf(tenancy) ?? writers.get(tenancy)
  if (!writer) {
    writer = new AuditWriter({ table: o.audit.table, logger: o.audit.logger })
    writers.set(tenancy, writer)
  }
  const trimmed = reason.trim()
  return new AuditedPool({
    pool: o.adminPool as pg.Pool,
    writer,
    acquireMs: o.timeouts.acquireMs,
    context: () => {
      const actor = options.actor ?? o.audit.actor
      const tenantId = tryCurrentTenant()
      return Object.freeze({
        source: 'allObjects' as const,
        reason: trimmed,
        actor: typeof actor === 'function' ? actor() : actor,
        tenantId: tenantId === undefined ? undefined : tenantText(o.tenantIdType, tenantId),
      })
    },
  })
}

function tenantText(type: Tenancy['options']['tenantIdType'], id: unknown): string {
  try {
    return parseTenantId(type, id)
  } catch {
    return String(id)
  }
}
