import { type Dialect, PostgresDialect } from 'kysely'
import type pg from 'pg'
import { bindingOptionsOf } from '../db/binding-options.js'
import { TenantBindingDialect } from '../db/tenant-dialect.js'
import { acquire, DEFAULT_ACQUIRE_MS } from '../sql/acquire.js'
import type { ResolvedTenancyOptions } from './options.js'

/**
 * The ONE place the dialect of `tenancy.kysely()` comes from: the tenant-binding
 * dialect (`src/db/`), which runs every unit of work in a transaction bound with
 * `set_config('rowtenancy.tenant_id', $1, true)` (or SET LOCAL on Citus), sends
 * `withoutTenant` work to `adminPool`, and checks the runtime role at start-up. The execution check and audit hooks are wrapped around whatever this
 * returns, so they survive the swap.
 *
 * @example
 * ```ts
 * const dialect = scopedDialect(tenancy.options)
 * ```
 * @internal
 */
export function scopedDialect(options: ResolvedTenancyOptions): Dialect {
  return new TenantBindingDialect({
    pool: options.pool as ConstructorParameters<typeof TenantBindingDialect>[0]['pool'],
    adminPool: options.adminPool as ConstructorParameters<
      typeof TenantBindingDialect
    >[0]['adminPool'],
    ...bindingOptionsOf(options),
    unboundWithoutTenant: true,
    serving: options.serving,
  })
}

/**
 * The dialect of `tenancy.allObjects()`: a plain `PostgresDialect` on
 * `adminPool` (or `pool` when no admin pool was given), its checkouts bounded
 * by `timeouts.acquireMs` as the scoped dialect's are.
 *
 * @internal
 */
export function adminDialect(options: ResolvedTenancyOptions): Dialect {
  const admin = options.adminPool as pg.Pool
  const acquireMs = options.timeouts.acquireMs ?? DEFAULT_ACQUIRE_MS
  return new PostgresDialect({
    pool: { connect: () => acquire(admin, acquireMs), end: () => admin.end() },
  })
}
