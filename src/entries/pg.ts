/**
 * `rowtenancy/pg`: plain `pg` bound to a tenant.
 *
 * @module
 */
export { type WithTenantClientOptions, withTenantClient } from '../pg/index.js'
