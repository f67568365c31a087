import { Kysely, type Transaction } from 'kysely'
import { AuditWriter } from '../audit/index.js'
import { savepointTransactions } from '../db/savepoint-transactions.js'
import { InvalidInputError } from '../errors/index.js'
import { hookDialect } from '../kysely/hooked-dialect.js'
import { TenantPlugin } from '../kysely/tenant-plugin.js'
import { tenantPolicy } from '../schema/rls-policy.js'
import { renderRlsEnable } from '../schema/rls-render.js'
import type { TableRegistry } from '../schema/table-registry.js'
import { boundedQueryable } from '../sql/acquire.js'
import { guardPoolErrors } from '../sql/unavailable.js'
import type { TenantIdType } from '../tenants/id-types.js'
import { auditPool } from './audit-pool.js'
import {
  type ResolvedTenancyOptions,
  resolveTenancyOptions,
  type TenancyOptions,
} from './options.js'
import { placedAdmin } from './placement.js'
import { adminDialect, scopedDialect } from './scoped-dialect.js'
import { allObjectsHooks, scopedHooks } from './statement-hooks.js'

/**
 * What `createTenancy` returns: the scoped and unscoped doors to the database.
 *
 * @example
 * ```ts
 * const db = tenancy.kysely<DB>()
 * const admin = tenancy.allObjects<DB>('monthly revenue report', { actor: 'alice' })
 * ```
 */
export interface Tenancy {
  /**
   * The tenant-scoped Kysely instance (one per tenancy). Every query on a
   * tenant-aware table gets `tenant_id = <current tenant>`; with no tenant in
   * context it throws `MissingTenantError`. Inside `withoutTenant(reason, fn)`
   * it does not filter, and each statement is audited with that reason.
   */
  kysely<DB>(): Kysely<DB>
  /**
   * An unscoped Kysely instance for admin and reporting work, on `adminPool`
   * (with `placement`: the admin pool of `database`, the default one when left
   * out). Every statement through it is audited with `reason` and `actor`; with
   * `placement`, the reason names the database it covers.
   */
  allObjects<DB>(
    reason: string,
    options?: { actor?: string | undefined; database?: string | undefined },
  ): Kysely<DB>
  /**
   * The databases this tenancy covers (`['default']` without the `placement`
   * option). `allObjects` reaches one of them at a time: the default one, or
   * `{ database }`; its audit records name it.
   */
  readonly databases: readonly string[]
  /**
   * Runs `fn` in one transaction of `kysely()`, bound to the current tenant once
   * at BEGIN; commits when `fn` resolves, rolls back when it throws. Nested calls
   * become savepoints.
   */
  transaction<DB, T>(fn: (trx: Transaction<DB>) => Promise<T>): Promise<T>
  /**
   * The RLS DDL of the tenant-aware tables (ENABLE + FORCE ROW LEVEL SECURITY and
   * the tenant policy), one statement per element, for your own migration tool.
   */
  rlsSql(): string[]
  /** The tenant-aware tables. */
  readonly tables: TableRegistry
  /** The options after validation and defaults. */
  readonly options: ResolvedTenancyOptions
  /** The plugin behind `kysely()`. */
  readonly plugin: TenantPlugin
  /** Ends `pool` and `adminPool`. Instances handed out stop working. */
  destroy(): Promise<void>
}

/**
 * Creates a tenancy: the scoped Kysely instance, the audited `allObjects`
 * door, and the audit writer, all from one set of options.
 *
 * @example
 * ```ts
 * const tenancy = createTenancy({ pool, tables: ['accounts', 'transactions'] })
 * const db = tenancy.kysely<DB>()
 * await runWithTenant('7', () => db.selectFrom('accounts').selectAll().execute())
 * // select * from "accounts" where "accounts"."tenant_id" = $1   -- ['7']
 * ```
 */
export function createTenancy(options: TenancyOptions): Tenancy {
  const { resolved, registry } = resolveTenancyOptions(options)
  // A server restart or pg_terminate_backend drops idle connections: the pool
  // replaces them; without a listener Node would crash on the pool's 'error'.
  guardPoolErrors(resolved.pool)
  guardPoolErrors(resolved.adminPool)
  const plugin = new TenantPlugin({ tables: registry, tenantIdType: resolved.tenantIdType })
  const audit = auditPool(resolved)
  const writer = new AuditWriter({
    // Audit records are written on request paths (withoutTenant work): a full audit
    // pool fails after timeouts.acquireMs like every other checkout.
    db: audit.pool && boundedQueryable(audit.pool, resolved.timeouts.acquireMs),
    table: resolved.audit.table,
    logger: resolved.audit.logger,
  })
  const scoped = new Kysely<unknown>({
    dialect: hookDialect(scopedDialect(resolved), scopedHooks(plugin, writer, resolved)),
    plugins: [...resolved.plugins, plugin],
  })
  let destroyed: Promise<void> | undefined
  const transaction = savepointTransactions(scoped)

  const tenancy: Tenancy = {
    kysely<DB>() {
      return scoped as Kysely<DB>
    },
    allObjects: allObjectsOf(resolved, plugin, writer),
    transaction<DB, T>(fn: (trx: Transaction<DB>) => Promise<T>) {
      return transaction((trx) => fn(trx as unknown as Transaction<DB>))
    },
    rlsSql() {
      return rlsStatements(registry, resolved.tenantIdType)
    },
    tables: registry,
    databases: Object.freeze(
      resolved.placement ? [...resolved.placement.databases.keys()] : ['default'],
    ),
    options: resolved,
    plugin,
    destroy() {
      destroyed ??= endPools(resolved, audit)
      return destroyed
    },
  }
  writersOf.set(tenancy, writer)
  return Object.freeze(tenancy)
}

/** Each tenancy's audit writer, on the tenancy's audit pool. */
const writersOf = new WeakMap<Tenancy, AuditWriter>()

/**
 * The audit writer of a tenancy made by {@link createTenancy}: it writes on the
 * tenancy's audit pool, never on an audited statement's connection.
 *
 * @internal
 */
export function auditWriterOf(tenancy: Tenancy): AuditWriter | undefined {
  return writersOf.get(tenancy)
}

/** `tenancy.allObjects(reason, { actor, database })`: an audited Kysely on the (placed) admin pool. */
function allObjectsOf(
  resolved: ResolvedTenancyOptions,
  plugin: TenantPlugin,
  writer: AuditWriter,
): Tenancy['allObjects'] {
  return <DB>(
    reason: string,
    callOptions: { actor?: string | undefined; database?: string | undefined } = {},
  ) => {
    if (typeof reason !== 'string' || reason.trim().length === 0) {
      throw new InvalidInputError(
        'allObjects(reason) needs a non-empty reason: it is written to the audit log with every statement.',
      )
    }
    const target = placedAdmin(resolved, callOptions.database)
    const hooks = allObjectsHooks(
      plugin,
      writer,
      resolved,
      `${reason.trim()}${target.note}`,
      callOptions.actor,
    )
    return new Kysely<DB>({
      dialect: hookDialect(adminDialect({ ...resolved, adminPool: target.adminPool }), hooks),
      plugins: [...resolved.plugins],
    })
  }
}

/** The RLS DDL of every tenant-aware table (`tenancy.rlsSql()`). */
function rlsStatements(registry: TableRegistry, tenantIdType: TenantIdType): string[] {
  return registry.tables.flatMap((t) =>
    renderRlsEnable(
      tenantPolicy(
        { schema: t.schema, name: t.name },
        { tenantColumn: t.tenantColumn, tenantIdType },
      ),
    ),
  )
}

/** Ends every pool of the tenancy (each placed database's too) and the audit pool it made. */
async function endPools(
  resolved: ResolvedTenancyOptions,
  audit: { end?: (() => Promise<void>) | undefined },
): Promise<void> {
  const pools = resolved.placement
    ? [...resolved.placement.databases.values()].flatMap((d) => [d.pool, d.adminPool])
    : [resolved.pool, resolved.adminPool]
  for (const pool of new Set(pools)) await pool.end()
  await audit.end?.()
}
