import type { AuditContext, AuditWriter } from '../audit/index.js'
import { tryCurrentTenant } from '../context/index.js'
import { checkExecution } from '../kysely/execution-check.js'
import type { StatementHooks } from '../kysely/hooked-dialect.js'
import type { TenantPlugin } from '../kysely/tenant-plugin.js'
import type { ResolvedTenancyOptions } from './options.js'

/**
 * Hooks of the scoped instance: refuse a statement compiled for another tenant
 * (or outside its `withoutTenant` scope), and audit every statement that runs
 * inside `withoutTenant`.
 *
 * @internal
 */
export function scopedHooks(
  plugin: TenantPlugin,
  writer: AuditWriter,
  options: ResolvedTenancyOptions,
): StatementHooks<AuditContext | undefined> {
  return {
    // A tenant-scoped statement (no withoutTenant scope) is not audited: `after` is a no-op for it.
    skipAfterWhenUndefined: true,
    before(query) {
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
      return async (db) => {
        await writer.record(context, query.sql, outcome, db)
      }
    },
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
      return async (db) => {
        await writer.record(context, query.sql, outcome, db)
      }
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
