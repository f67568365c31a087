export type { ColumnInfo, ForeignKeyInfo, TableInfo } from '../sql/catalog/model.js'

/**
 * One legacy tenant: its id (kept as `tenants.id`), schema, and what is known about it.
 */
export interface SourceTenant {
  /** The legacy id in canonical text form for the configured id type. */
  readonly id: string
  readonly schema: string
  readonly slug: string
  readonly name: string
  readonly domains: readonly string[]
  /** The primary domain, when the legacy layout marks one. */
  readonly primaryDomain?: string
}

/**
 * Where the list of tenants comes from.
 *
 * @example
 * ```ts
 * const s: SourceOptions = { legacyTenantsTable: 'public.customers_client' }
 * const p: SourceOptions = { schemaPattern: 'tenant_{id}' }
 * ```
 */
export interface SourceOptions {
  /** `schema.table` (or `table`, in `public`) of the legacy tenants table. */
  readonly legacyTenantsTable?: string
  /** Column naming each tenant's schema; `schema_name` by default. */
  readonly legacySchemaColumn?: string
  /** Column holding the legacy tenant id; `id` by default. */
  readonly legacyIdColumn?: string
  /** `schema.table` of the legacy domains table (auto-detected when it has a FK to the tenants table). */
  readonly legacyDomainsTable?: string
  /** Schemas named like `tenant_{id}`; `{id}` captures the tenant id. */
  readonly schemaPattern?: string
}

/**
 * How ids reach the shared tables: `composite` keeps them under `(tenant_id, id)`,
 * `remap` assigns new ones and rewrites foreign keys through `rowtenancy_id_map`.
 */
export type IdStrategy = 'composite' | 'remap'

/**
 * One drift finding between a tenant schema and the target.
 *
 * @example
 * ```ts
 * const d: DriftIssue = { kind: 'missing-target-column', table: 'book', column: 'isbn',
 *   blocking: true, message: 'book.isbn has no column in public.book' }
 * ```
 */
export interface DriftIssue {
  readonly kind:
    | 'missing-schema'
    | 'missing-target-table'
    | 'target-missing-tenant-id'
    | 'missing-target-column'
    | 'extra-target-column'
    | 'missing-source-table'
    | 'type-mismatch'
    | 'generation-mismatch'
    | 'trigger-difference'
    | 'routine-difference'
    | 'row-security'
  readonly table?: string
  readonly column?: string
  /** A blocking issue keeps the tenant from being migrated. */
  readonly blocking: boolean
  readonly message: string
}
