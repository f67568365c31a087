/**
 * A column of a table as the migration sees it.
 *
 * @example
 * ```ts
 * const col: ColumnInfo = { name: 'id', type: 'bigint', notNull: true, hasDefault: true,
 *   generated: false, identity: 'd', typeKind: 'b', enumLabels: undefined }
 * ```
 */
export interface ColumnInfo {
  readonly name: string
  /** `format_type(atttypid, atttypmod)`, e.g. `character varying(20)`. */
  readonly type: string
  readonly notNull: boolean
  readonly hasDefault: boolean
  /** A `GENERATED ALWAYS AS (...) STORED` column. */
  readonly generated: boolean
  /** `a` (GENERATED ALWAYS AS IDENTITY), `d` (BY DEFAULT), or `''`. */
  readonly identity: '' | 'a' | 'd'
  /** The column's type OID and modifier (`atttypmod`): the identity its type is compared by. */
  readonly typeOid?: string
  readonly typeMod?: number
  /** The expression of a generated column, deparsed, its own schema left unqualified. */
  readonly generation?: string
  /** `pg_type.typtype`: `b` base, `e` enum, `d` domain, ... */
  readonly typeKind: string
  /** The labels of an enum column, in order. */
  readonly enumLabels?: readonly string[]
}

/**
 * A foreign key, by column names on both sides.
 *
 * @example
 * ```ts
 * const fk: ForeignKeyInfo = { name: 'book_author_fk', columns: ['author_id'],
 *   refSchema: 'tenant_1', refTable: 'author', refColumns: ['id'], deferrable: false }
 * ```
 */
export interface ForeignKeyInfo {
  readonly name: string
  readonly columns: readonly string[]
  readonly refSchema: string
  readonly refTable: string
  readonly refColumns: readonly string[]
  readonly deferrable: boolean
}

/**
 * A table (plain or partitioned; partitions are folded into their parent).
 *
 * @example
 * ```ts
 * const t: TableInfo = { schema: 'tenant_1', name: 'book', partitioned: false, columns: [],
 *   primaryKey: ['id'], foreignKeys: [], estimatedRows: 0, userTriggers: [] }
 * ```
 */
export interface TableInfo {
  readonly schema: string
  readonly name: string
  readonly partitioned: boolean
  readonly columns: readonly ColumnInfo[]
  readonly primaryKey: readonly string[]
  readonly foreignKeys: readonly ForeignKeyInfo[]
  /** `pg_class.reltuples`, summed over partitions; a progress estimate only. */
  readonly estimatedRows: number
  /** Names of enabled user (non-internal) triggers. */
  readonly userTriggers: readonly string[]
}

/**
 * One legacy tenant: its id (kept as `tenants.id`), schema, and what is known about it.
 *
 * @example
 * ```ts
 * const t: SourceTenant = { id: '7', schema: 'acme', slug: 'acme', name: 'Acme', domains: ['acme.example.com'] }
 * ```
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
 *
 * @example
 * ```ts
 * const s: IdStrategy = 'composite'
 * ```
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
  readonly table?: string
  readonly column?: string
  /** A blocking issue keeps the tenant from being migrated. */
  readonly blocking: boolean
  readonly message: string
}
