/**
 * `rowtenancy/pg`: plain `pg` bound to a tenant, and the tenant pool any
 * pg-based ORM can use (Drizzle, Prisma's adapter-pg, Knex, TypeORM).
 *
 * @module
 */
export {
  AuditedPool,
  type AuditedPoolOptions,
  TenantPool,
  type TenantPoolOptions,
  type WithTenantClientOptions,
  withTenantClient,
} from '../pg/index.js'
