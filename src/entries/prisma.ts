/**
 * `rowtenancy/prisma`: Prisma 7's `@prisma/adapter-pg` on the tenant pool, and
 * the extension that keeps Prisma's request batching within one tenant, and the
 * audited cross-tenant adapter and client extension.
 *
 * @module
 */
export {
  allObjectsExtension,
  allObjectsPrismaAdapter,
  type PrismaPgOptions,
  tenantPrismaAdapter,
  tenantPrismaExtension,
} from '../prisma/index.js'
