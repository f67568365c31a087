import { type Dialect, PostgresDialect } from 'kysely'
import type { ResolvedTenancyOptions } from './options.js'

/**
 * The ONE place the dialect of `tenancy.kysely()` comes from. For now a plain
 * `PostgresDialect` on `options.pool`; the session-binding dialect (issue 9:
 * `set_config('rowtenancy.tenant_id', $1, true)` in a transaction) replaces it
 * here. The execution check and audit hooks are wrapped around whatever this
 * returns, so they survive the swap.
 *
 * @example
 * ```ts
 * const dialect = scopedDialect(tenancy.options)
 * ```
 * @internal
 */
export function scopedDialect(options: ResolvedTenancyOptions): Dialect {
  return new PostgresDialect({ pool: options.pool })
}

/**
 * The dialect of `tenancy.allObjects()`: a plain `PostgresDialect` on
 * `adminPool` (or `pool` when no admin pool was given).
 *
 * @internal
 */
export function adminDialect(options: ResolvedTenancyOptions): Dialect {
  return new PostgresDialect({ pool: options.adminPool })
}
