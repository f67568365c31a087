import { PostgresQueryCompiler, type RootOperationNode } from 'kysely'
import type { AuditContext, AuditWriter } from '../audit/index.js'
import {
  type CrossTenantScope,
  crossTenantScope,
  isScopeOpen,
  tryCurrentTenant,
} from '../context/index.js'
import { UnsupportedQueryError } from '../errors/index.js'
import { checkExecution } from '../kysely/execution-check.js'
import type { StatementHooks } from '../kysely/hooked-dialect.js'
import { metaOf } from '../kysely/query-meta.js'
import type { TenantPlugin } from '../kysely/tenant-plugin.js'
import type { ResolvedTenancyOptions } from './options.js'

/**
 * The context a connection of the scoped instance was checked out in: its
 * tenant (the connection is bound to it), an open `withoutTenant` scope (an
 * admin connection), or neither (bound to no tenant).
 *
 * @internal
 */
export interface CheckoutContext {
  readonly tenant: string | undefined
  readonly scope: CrossTenantScope | undefined
}

/**
 * Refuses a statement on a connection (a transaction, `db.connection()`) used
 * outside the context it was checked out in: an admin connection after its
 * `withoutTenant` scope ended or under a tenant, a connection bound to one
 * tenant under another tenant or inside `withoutTenant`.
 *
 * @internal
 */
export function checkCheckout(plugin: TenantPlugin, checkout: CheckoutContext): void {
  const scope = crossTenantScope()
  if (checkout.scope !== undefined) {
    if (!isScopeOpen(checkout.scope)) {
      throw new UnsupportedQueryError(
        `This connection or transaction was opened inside withoutTenant(${JSON.stringify(checkout.scope.reason)}), ` +
          'which has ended; it reads across tenants and is closed with its scope. Open a new one where it is needed.',
      )
    }
    if (scope === undefined) {
      throw new UnsupportedQueryError(
        `This connection or transaction was opened inside withoutTenant(${JSON.stringify(checkout.scope.reason)}) ` +
          'and reads across tenants; it is refused under a tenant. Use the scoped db inside runWithTenant instead.',
      )
    }
    return
  }
  const id = tryCurrentTenant()
  const now = id === undefined ? undefined : tenantText(plugin, id)
  if (scope === undefined && now === checkout.tenant) return
  const was =
    checkout.tenant === undefined ? 'no tenant' : `tenant ${JSON.stringify(checkout.tenant)}`
  const is =
    scope !== undefined
      ? `withoutTenant(${JSON.stringify(scope.reason)})`
      : now === undefined
        ? 'no tenant'
        : `tenant ${JSON.stringify(now)}`
  throw new UnsupportedQueryError(
    `This transaction (or connection) is bound to ${was}, but the code using it now runs for ${is}. ` +
      'A tenant switch inside a bound transaction is refused: finish the transaction first, or open ' +
      "the other tenant's work in its own transaction.",
  )
}

/**
 * Hooks of the scoped instance: refuse a statement compiled for another tenant
 * (or outside its `withoutTenant` scope), or sent on a connection opened in
 * another context, and audit every statement that runs inside `withoutTenant`.
 *
 * @internal
 */
export function scopedHooks(
  plugin: TenantPlugin,
  writer: AuditWriter,
  options: ResolvedTenancyOptions,
): StatementHooks<AuditContext | undefined, CheckoutContext> {
  return {
    // A tenant-scoped statement (no withoutTenant scope) is not audited: `after` is a no-op for it.
    skipAfterWhenUndefined: true,
    acquired() {
      const scope = crossTenantScope()
      const id = scope === undefined ? tryCurrentTenant() : undefined
      return { tenant: id === undefined ? undefined : tenantText(plugin, id), scope }
    },
    before(query, checkout) {
      checkCheckout(plugin, checkout)
      const scope = checkExecution(plugin, query)
      if (scope === undefined) return undefined
      return Object.freeze({
        source: 'withoutTenant' as const,
        reason: scope.reason,
        actor: scope.actor ?? defaultActor(options),
        tenantId: tenantText(plugin, scope.outerTenant),
      })
    },
    after(context, query, outcome) {
      if (context === undefined) return undefined
      return () => writer.recordAfter(context, query.sql, outcome)
    },
    ...(options.serving ? { rewrite: legacyRewrite(plugin) } : {}),
  }
}

/**
 * Hybrid serving (an online migration): a query the plugin scoped for a tenant
 * whose connection is bound to its legacy schema is compiled again from the node
 * the plugin received, without tenant filters or stamps (the legacy tables have
 * no tenant column; `rowtenancy_enter` put the schema first on the search_path
 * and checked, under the tenant's fence, that the tenant is still there).
 */
function legacyRewrite(plugin: TenantPlugin): StatementHooks<unknown, unknown>['rewrite'] {
  const compiler = new PostgresQueryCompiler()
  return (query, connection) => {
    if ((connection as { placement?: unknown }).placement !== 'schema') return query
    const meta = metaOf(query.query)
    if (meta === undefined || meta.owner !== plugin || meta.binding.tenant === undefined) {
      return query
    }
    return compiler.compileQuery(meta.origin as RootOperationNode, query.queryId)
  }
}

/**
 * Hooks of an `allObjects(reason)` instance: audit every statement.
 *
 * @internal
 */
export function allObjectsHooks(
  plugin: TenantPlugin,
  writer: AuditWriter,
  options: ResolvedTenancyOptions,
  reason: string,
  actor: string | undefined,
): StatementHooks<AuditContext> {
  return {
    before() {
      return Object.freeze({
        source: 'allObjects' as const,
        reason,
        actor: actor ?? defaultActor(options),
        tenantId: tenantText(plugin, tryCurrentTenant()),
      })
    },
    after(context, query, outcome) {
      return () => writer.recordAfter(context, query.sql, outcome)
    },
  }
}

function defaultActor(options: ResolvedTenancyOptions): string | undefined {
  const actor = options.audit.actor
  return typeof actor === 'function' ? actor() : actor
}

function tenantText(plugin: TenantPlugin, id: unknown): string | undefined {
  if (id === undefined) return undefined
  try {
    return plugin.canonical(id)
  } catch {
    return String(id)
  }
}
