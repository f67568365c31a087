import { PrismaPg } from '@prisma/adapter-pg'
import type pg from 'pg'
import { ConfigError } from '../errors/index.js'
import type { Tenancy } from '../tenancy/create-tenancy.js'
import { allObjectsPool, tenantPoolOf } from '../tenancy/orm-pools.js'
import { assertIsolatedRequest } from './batch-isolation.js'

/** adapter-pg's own options (schema, onPoolError ...). @example `{ schema: 'app' }` */
export type PrismaPgOptions = NonNullable<ConstructorParameters<typeof PrismaPg>[1]>

/**
 * Prisma's `@prisma/adapter-pg` on the tenancy's `TenantPool`: every model
 * query and `$queryRaw` is bound to the current tenant in one round trip, and
 * an interactive `$transaction(async (tx) => ...)` (or a batch) is bound once
 * after its BEGIN; no per-query transaction as in Prisma's RLS extension recipe.
 * With no tenant in context statements run unbound (RLS: no rows), or throw
 * `MissingTenantError` with `requireTenant: true`.
 *
 * @example
 * ```ts
 * const prisma = new PrismaClient({ adapter: tenantPrismaAdapter(tenancy) })
 * await runWithTenant(7, () => prisma.account.findMany()) // tenant 7's rows, by RLS
 * ```
 */
export function tenantPrismaAdapter(
  tenancy: Tenancy,
  options: PrismaPgOptions & { requireTenant?: boolean | undefined } = {},
): PrismaPg {
  const { requireTenant, ...pgOptions } = options
  return requireIsolation(adapterOn(tenantPoolOf(tenancy, { requireTenant }), pgOptions))
}

/**
 * A Prisma adapter for deliberate cross-tenant work: the tenancy's `adminPool`,
 * every statement written to the audit log with `reason` and the actor.
 *
 * @example
 * ```ts
 * const admin = new PrismaClient({ adapter: allObjectsPrismaAdapter(tenancy, 'monthly report') })
 * ```
 */
export function allObjectsPrismaAdapter(
  tenancy: Tenancy,
  reason: string,
  options: PrismaPgOptions & { actor?: string | undefined } = {},
): PrismaPg {
  const { actor, ...pgOptions } = options
  return adapterOn(allObjectsPool(tenancy, reason, { actor }), pgOptions)
}

function adapterOn(pool: pg.Pool, options: PrismaPgOptions): PrismaPg {
  const adapter = new PrismaPg(pool, options)
  // adapter-pg takes a pool only when it is an instance of ITS pg.Pool; anything else
  // it reads as a config and opens a pool of its own, which would bypass the binding.
  if ((adapter as unknown as { externalPool: unknown }).externalPool !== pool) {
    throw new ConfigError(
      '@prisma/adapter-pg did not take the tenant pool as its pool: it resolves another copy of "pg" ' +
        'than rowtenancy does. Deduplicate pg (npm dedupe; one "pg" version in package.json).',
    )
  }
  return adapter
}

/**
 * The adapter runs statements and begins transactions only for a client that
 * `tenantPrismaExtension()` isolated (a transaction's statements are bound when it
 * begins, in the context that began it).
 */
function requireIsolation(factory: PrismaPg): PrismaPg {
  const connect = factory.connect.bind(factory)
  factory.connect = async () => {
    const adapter = await connect()
    for (const name of ['queryRaw', 'executeRaw', 'executeScript', 'startTransaction'] as const) {
      const method = adapter[name] as (...args: unknown[]) => Promise<unknown>
      ;(adapter as unknown as Record<string, unknown>)[name] = async (...args: unknown[]) => {
        assertIsolatedRequest()
        return method.apply(adapter, args)
      }
    }
    return adapter
  }
  return factory
}
