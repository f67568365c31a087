import { BINDING_DEFAULTS } from '../db/binding-options.js'
import { DEFAULTS } from '../sql/defaults.js'
import { TENANT_ID_TYPES, type TenantIdType } from '../tenants/id-types.js'

/**
 * One configuration key: its name in `rowtenancy.config.*`, its CLI flag, its
 * environment variable, its type and default. Keys are declared once here and
 * read by the config loader, the CLI and the docs alike.
 *
 * @example
 * ```ts
 * const key = CONFIG_KEYS.find((k) => k.key === 'databaseUrl') // flag --database-url, env DATABASE_URL
 * ```
 */
export interface ConfigKey {
  readonly key: keyof RowtenancyConfig
  readonly flag: string
  readonly env: string
  readonly type: 'string' | 'integer' | 'boolean' | 'list' | readonly string[]
  readonly description: string
  readonly default?: unknown
}

/**
 * The whole configuration, after defaults, file, environment and flags merged.
 */
export interface RowtenancyConfig {
  /** Connection URL for the runtime / CLI work. */
  databaseUrl?: string
  /** Connection URL of an owner / migrator role (DDL, migrations, cross-tenant work). */
  adminDatabaseUrl?: string
  /** Type of tenants.id and every tenant_id (the binding option `tenantIdType`). */
  tenantIdType: TenantIdType
  /** Schema that holds tenants, tenant_domains and the shared tables. */
  tenantsSchema: string
  /** Name of the tenant column in tenant-aware tables (the binding option `tenantColumn`). */
  tenantColumn: string
  /** The tenant-aware tables. */
  tables: string[]
  /** The runtime role (owns nothing, no BYPASSRLS). */
  runtimeRole?: string
  /** Legacy tenants table naming each tenant's schema (django-tenants: public.customers_client). */
  legacyTenantsTable?: string
  /** Column of the legacy tenants table that names the schema. */
  legacySchemaColumn: string
  /** Column of the legacy tenants table that holds the tenant id. */
  legacyIdColumn: string
  /** Legacy domains table (django-tenants: public.customers_domain). */
  legacyDomainsTable?: string
  /** Schema name pattern such as tenant_{id}, instead of a legacy tenants table. */
  schemaPattern?: string
  /** Schema of the shared target tables. */
  targetSchema: string
  /** How ids are carried over: composite keeps them, remap assigns new ones. */
  idStrategy: 'composite' | 'remap'
  /** Tenants migrated at once. */
  jobs: number
  /** Verify each tenant before marking it done. */
  verify: boolean
  /** Refuse the whole run when any tenant has blocking drift. */
  strict: boolean
}

/**
 * Every configuration key. A key in a config file that is not here is an error.
 *
 * @example
 * ```ts
 * CONFIG_KEYS.map((k) => k.flag) // ['--database-url', ...]
 * ```
 */
export const CONFIG_KEYS: readonly ConfigKey[] = Object.freeze([
  {
    key: 'databaseUrl',
    flag: '--database-url',
    env: 'DATABASE_URL',
    type: 'string',
    description: 'PostgreSQL connection URL',
  },
  {
    key: 'adminDatabaseUrl',
    flag: '--admin-database-url',
    env: 'ROWTENANCY_ADMIN_DATABASE_URL',
    type: 'string',
    description: 'connection URL of the owner / migrator role',
  },
  {
    key: 'tenantIdType',
    flag: '--tenant-id-type',
    env: 'ROWTENANCY_TENANT_ID_TYPE',
    type: TENANT_ID_TYPES,
    default: BINDING_DEFAULTS.tenantIdType,
    description: 'type of tenants.id and every tenant_id',
  },
  {
    key: 'tenantsSchema',
    flag: '--tenants-schema',
    env: 'ROWTENANCY_TENANTS_SCHEMA',
    type: 'string',
    default: DEFAULTS.schema,
    description: 'schema of the tenants tables',
  },
  {
    key: 'tenantColumn',
    flag: '--tenant-column',
    env: 'ROWTENANCY_TENANT_COLUMN',
    type: 'string',
    default: BINDING_DEFAULTS.tenantColumn,
    description: 'tenant column of tenant-aware tables',
  },
  {
    key: 'tables',
    flag: '--tables',
    env: 'ROWTENANCY_TABLES',
    type: 'list',
    default: [],
    description: 'tenant-aware tables, comma separated',
  },
  {
    key: 'runtimeRole',
    flag: '--runtime-role',
    env: 'ROWTENANCY_RUNTIME_ROLE',
    type: 'string',
    description: 'runtime role: owns nothing, no BYPASSRLS',
  },
  {
    key: 'legacyTenantsTable',
    flag: '--legacy-tenants-table',
    env: 'ROWTENANCY_LEGACY_TENANTS_TABLE',
    type: 'string',
    description: 'legacy table naming each tenant schema',
  },
  {
    key: 'legacySchemaColumn',
    flag: '--legacy-schema-column',
    env: 'ROWTENANCY_LEGACY_SCHEMA_COLUMN',
    type: 'string',
    default: 'schema_name',
    description: 'its schema-name column',
  },
  {
    key: 'legacyIdColumn',
    flag: '--legacy-id-column',
    env: 'ROWTENANCY_LEGACY_ID_COLUMN',
    type: 'string',
    default: 'id',
    description: 'its tenant-id column',
  },
  {
    key: 'legacyDomainsTable',
    flag: '--legacy-domains-table',
    env: 'ROWTENANCY_LEGACY_DOMAINS_TABLE',
    type: 'string',
    description: 'legacy domains table',
  },
  {
    key: 'schemaPattern',
    flag: '--schema-pattern',
    env: 'ROWTENANCY_SCHEMA_PATTERN',
    type: 'string',
    description: "tenant schema pattern, e.g. 'tenant_{id}'",
  },
  {
    key: 'targetSchema',
    flag: '--target-schema',
    env: 'ROWTENANCY_TARGET_SCHEMA',
    type: 'string',
    default: DEFAULTS.schema,
    description: 'schema of the shared tables',
  },
  {
    key: 'idStrategy',
    flag: '--id-strategy',
    env: 'ROWTENANCY_ID_STRATEGY',
    type: ['composite', 'remap'],
    default: 'composite',
    description: 'keep ids (composite) or assign new ones (remap)',
  },
  {
    key: 'jobs',
    flag: '--jobs',
    env: 'ROWTENANCY_JOBS',
    type: 'integer',
    default: 1,
    description: 'tenants migrated at once',
  },
  {
    key: 'verify',
    flag: '--verify',
    env: 'ROWTENANCY_VERIFY',
    type: 'boolean',
    default: true,
    description: 'verify each tenant before marking it done',
  },
  {
    key: 'strict',
    flag: '--strict',
    env: 'ROWTENANCY_STRICT',
    type: 'boolean',
    default: false,
    description: 'all or nothing when a tenant has drift',
  },
] as ConfigKey[])
