import type { Queryable } from '../sql/queryable.js'
import type { ResolvedTenancyOptions } from './options.js'

/**
 * The pool audit records are written on: `audit.pool` when given (its owner
 * ends it), else a pool of two connections with `adminPool`'s settings (ended
 * with the tenancy), else, for a pool that cannot be copied, `adminPool` itself.
 * Never the audited statement's own connection: user SQL there (a raw `begin`
 * ... `rollback`, a temporary table) could undo or redirect the record.
 *
 * @internal
 */
export function auditPool(options: ResolvedTenancyOptions): {
  pool: Queryable | undefined
  end?: () => Promise<void>
} {
  if (options.audit.table === false) return { pool: undefined }
  if (options.audit.pool !== undefined) return { pool: options.audit.pool }
  const admin = options.adminPool as Queryable & {
    options?: Record<string, unknown>
    constructor: unknown
  }
  const Pool = admin.constructor as
    | (new (
        config: Record<string, unknown>,
      ) => Queryable & { end(): Promise<void> })
    | undefined
  if (typeof admin.options !== 'object' || admin.options === null || typeof Pool !== 'function') {
    return { pool: options.adminPool }
  }
  let pool: (Queryable & { end(): Promise<void> }) | undefined
  try {
    pool = new Pool({ ...admin.options, max: 2, min: 0 })
  } catch {
    return { pool: options.adminPool }
  }
  if (typeof pool?.query !== 'function' || typeof pool.end !== 'function') {
    return { pool: options.adminPool }
  }
  const own = pool
  // An idle error on a pooled client must not crash the process (pg emits 'error').
  ;(own as unknown as { on?: (e: string, f: () => void) => void }).on?.('error', () => {})
  return { pool: own, end: () => own.end() }
}
