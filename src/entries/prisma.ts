/**
 * `rowtenancy/prisma`: Prisma 7's `@prisma/adapter-pg` on the tenant pool, and
 * the audited cross-tenant adapter and client extension.
 *
 * @module
 */
export {
  allObjectsExtension,
  allObjectsPrismaAdapter,
  type PrismaPgOptions,
  tenantPrismaAdapter,
} from '../prisma/index.js'
