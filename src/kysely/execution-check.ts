import type { CompiledQuery } from 'kysely'
import { type CrossTenantScope, crossTenantScope, currentTenant } from '../context/index.js'
import { UnsupportedQueryError } from '../errors/index.js'
import type { TenantPlugin } from './tenant-plugin.js'

/**
 * The execution-time half of tenant scoping. The plugin binds the tenant when a
 * query is compiled; this check runs when the compiled query is sent and refuses
 * it unless the context still matches:
 *
 * - compiled for tenant T: the current tenant must be T (or a `withoutTenant`
 *   scope is open, where a narrower query is harmless);
 * - compiled inside `withoutTenant` (unfiltered): a `withoutTenant` scope must
 *   still be open;
 * - not compiled by this plugin: a raw `CompiledQuery.raw(...)` needs a tenant
 *   or a scope (its rows are left to RLS); anything else was compiled by another
 *   Kysely instance or changed by a plugin that runs after TenantPlugin, and is
 *   refused.
 *
 * Returns the open `withoutTenant` scope, so the caller can audit the statement.
 *
 * @example
 * ```ts
 * const compiled = runWithTenant('1', () => db.selectFrom('accounts').selectAll().compile())
 * runWithTenant('2', () => checkExecution(plugin, compiled)) // UnsupportedQueryError
 * ```
 * @internal
 */
export function checkExecution(
  plugin: TenantPlugin,
  query: CompiledQuery,
): CrossTenantScope | undefined {
  const scope = crossTenantScope()
  const binding = plugin.bindingOf(query.query)
  if (binding === undefined) {
    if (query.query.kind !== 'RawNode') {
      throw new UnsupportedQueryError(
        "This query was not scoped by this tenancy's TenantPlugin: it was compiled by another Kysely " +
          'instance, or changed by a plugin added after TenantPlugin (db.withPlugin / withoutPlugins). ' +
          'Build it with tenancy.kysely() and pass extra plugins to createTenancy({ plugins }).',
      )
    }
    if (scope === undefined) currentTenant()
    return scope
  }
  if (scope !== undefined) return scope
  if (binding.shared) return undefined
  if (binding.scope !== undefined) {
    throw new UnsupportedQueryError(
      `This query was compiled inside withoutTenant(${JSON.stringify(binding.scope.reason)}) and is ` +
        'unfiltered, but it is executed outside that scope. Compile and execute it in the same scope.',
    )
  }
  const now = plugin.canonical(currentTenant())
  if (now !== binding.tenant) {
    throw new UnsupportedQueryError(
      `This query was compiled for tenant ${JSON.stringify(binding.tenant)} but is executed for tenant ` +
        `${JSON.stringify(now)}; it is refused so no rows leak. Compile it again under the current ` +
        'tenant (or execute the query builder directly, which compiles at execution).',
    )
  }
  return undefined
}
