import type { PrismaPg } from '@prisma/adapter-pg'
import type { Tenancy } from '../tenancy/create-tenancy.js'
import { allObjectsPrismaAdapter } from './tenant-adapter.js'

/**
 * A Prisma client extension adding `$allObjects(reason, { actor })`: a client
 * of the same generated class on the tenancy's audited cross-tenant pool
 * (`allObjectsPrismaAdapter`). `createClient` builds it from an adapter, as
 * you build your tenant client. Keep the returned client for the job.
 *
 * @example
 * ```ts
 * const prisma = new PrismaClient({ adapter: tenantPrismaAdapter(tenancy) }).$extends(
 *   allObjectsExtension(tenancy, (adapter) => new PrismaClient({ adapter })),
 * )
 * const admin = prisma.$allObjects('monthly revenue report', { actor: 'alice' })
 * await admin.account.count() // every tenant; one audit_log row
 * ```
 */
export function allObjectsExtension<C>(
  tenancy: Tenancy,
  createClient: (adapter: PrismaPg) => C,
): {
  name: string
  client: { $allObjects(reason: string, options?: { actor?: string | undefined }): C }
} {
  return {
    name: 'rowtenancy-all-objects',
    client: {
      $allObjects(reason: string, options: { actor?: string | undefined } = {}): C {
        return createClient(allObjectsPrismaAdapter(tenancy, reason, options))
      },
    },
  }
}
