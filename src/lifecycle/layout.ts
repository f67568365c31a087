import { ConfigError } from '../errors/index.js'
import { DEFAULTS } from '../sql/defaults.js'
import type { Queryable } from '../sql/queryable.js'
import { existingIdType } from '../tenants/install.js'
import type { TenantLayout } from './tables.js'

/**
 * Where the tenant tables are, as a lifecycle option: every field optional.
 */
export interface LayoutOptions {
  /** The schema of the tenant-aware tables; `public` by default. */
  readonly schema?: string | undefined
  /** The schema of `tenants`; `schema` by default. */
  readonly tenantsSchema?: string | undefined
  /** The tenant column; `tenant_id` by default. */
  readonly tenantColumn?: string | undefined
  /** The tenant id type; read from `tenants.id` when left out. */
  readonly idType?: TenantLayout['idType'] | undefined
}

/**
 * Fills a {@link LayoutOptions} in from the database (the id type of `tenants.id`).
 * Throws a `ConfigError` when there is no `tenants` table.
 *
 * @internal
 */
export async function resolveLayout(db: Queryable, options: LayoutOptions): Promise<TenantLayout> {
  const schema = options.schema ?? DEFAULTS.schema
  const tenantsSchema = options.tenantsSchema ?? schema
  const found = await existingIdType(db, tenantsSchema)
  if (found === undefined) {
    throw new ConfigError(
      `There is no ${tenantsSchema}.tenants table in this database: run rowtenancy init there first ` +
        '(or pass the right --tenants-schema).',
    )
  }
  if (options.idType !== undefined && options.idType !== found) {
    throw new ConfigError(
      `${tenantsSchema}.tenants.id is ${found}, but the configuration says ${options.idType}.`,
    )
  }
  return {
    schema,
    tenantsSchema,
    tenantColumn: options.tenantColumn ?? DEFAULTS.tenantColumn,
    idType: found,
  }
}
