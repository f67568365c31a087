/**
 * The typed DDL model of `schema generate`: plain objects first (Drizzle's
 * `PgPolicyConfig` style), rendered to SQL late by `renderTenantSchema`.
 *
 * Expressions (defaults, checks, index tails, partition bounds) are SQL text as
 * PostgreSQL itself deparsed them with the template schema first on the
 * `search_path`, so names of template objects (enums, domains, sequences) are
 * unqualified and resolve in the target schema when the statements run.
 */

/** A foreign key action. @example `const a: ForeignKeyAction = 'CASCADE'` */
export type ForeignKeyAction = 'NO ACTION' | 'RESTRICT' | 'CASCADE' | 'SET NULL' | 'SET DEFAULT'

/**
 * One column.
 *
 * @example
 * ```ts
 * const c: ColumnDef = { name: 'title', type: 'text', notNull: true, default: "''::text" }
 * ```
 */
export interface ColumnDef {
  readonly name: string
  /** The SQL type as `format_type` renders it (`text`, `numeric(10,2)`, `mood[]`). */
  readonly type: string
  readonly notNull: boolean
  /** The default expression (not for identity or generated columns). */
  readonly default?: string | undefined
  readonly identity?: 'ALWAYS' | 'BY DEFAULT' | undefined
  /** The expression of a `GENERATED ALWAYS AS (...) STORED` column. */
  readonly generated?: string | undefined
  /** A `COLLATE` name, already quoted (`"C"`, `"pg_catalog"."C"`). */
  readonly collation?: string | undefined
  /** An inline `REFERENCES schema.table (column)` (the tenant column's link to `tenants`). */
  readonly references?: { readonly schema: string; readonly table: string; readonly column: string }
}

/**
 * A primary key or unique constraint.
 *
 * @example
 * ```ts
 * const k: KeyDef = { name: 'books_pkey', columns: ['tenant_id', 'id'], include: [], nullsNotDistinct: false, deferrable: false, initiallyDeferred: false }
 * ```
 */
export interface KeyDef {
  readonly name: string
  readonly columns: readonly string[]
  readonly include: readonly string[]
  readonly nullsNotDistinct: boolean
  readonly deferrable: boolean
  readonly initiallyDeferred: boolean
}

/**
 * A foreign key.
 *
 * @example
 * ```ts
 * const fk: ForeignKeyDef = {
 *   name: 'books_author_id_fkey', columns: ['tenant_id', 'author_id'],
 *   refSchema: 'public', refTable: 'authors', refColumns: ['tenant_id', 'id'],
 *   onUpdate: 'NO ACTION', onDelete: 'CASCADE', onDeleteColumns: [], match: 'SIMPLE',
 *   deferrable: false, initiallyDeferred: false,
 * }
 * ```
 */
export interface ForeignKeyDef {
  readonly name: string
  readonly columns: readonly string[]
  readonly refSchema: string
  readonly refTable: string
  readonly refColumns: readonly string[]
  readonly onUpdate: ForeignKeyAction
  readonly onDelete: ForeignKeyAction
  /** `ON DELETE SET NULL (cols)` / `SET DEFAULT (cols)`; empty for all columns. */
  readonly onDeleteColumns: readonly string[]
  readonly match: 'SIMPLE' | 'FULL'
  readonly deferrable: boolean
  readonly initiallyDeferred: boolean
}

/**
 * A check constraint, its definition as `pg_get_constraintdef` gives it.
 *
 * @example
 * ```ts
 * const c: CheckDef = { name: 'books_pages_check', definition: 'CHECK ((pages > 0))' }
 * ```
 */
export interface CheckDef {
  readonly name: string
  readonly definition: string
}

/**
 * An exclusion constraint: `EXCLUDE USING <method> (<tail>`.
 *
 * @example
 * ```ts
 * const x: ExclusionDef = { name: 'b_excl', method: 'gist', tail: 'room WITH =, during WITH &&)' }
 * ```
 */
export interface ExclusionDef {
  readonly name: string
  readonly method: string
  /** Everything after `EXCLUDE USING <method> (`. */
  readonly tail: string
}

/**
 * An index that backs no constraint: `CREATE [UNIQUE] INDEX name ON table USING <method> (<tail>`.
 *
 * @example
 * ```ts
 * const i: IndexDef = { name: 'books_lower_idx', unique: false, method: 'btree', keys: ['lower(title)'], tail: 'lower(title))' }
 * ```
 */
export interface IndexDef {
  readonly name: string
  readonly unique: boolean
  readonly method: string
  /** The key columns / expressions (for reports; the SQL comes from `tail`). */
  readonly keys: readonly string[]
  /** Everything after `USING <method> (`: keys, `INCLUDE`, `WITH`, `WHERE`. */
  readonly tail: string
}

/**
 * One table (plain, partitioned, or a partition of another).
 *
 * @example
 * ```ts
 * const t: TableDef = { name: 'books', partitionKey: undefined, partitionOf: undefined, columns: [], primaryKey: undefined, uniques: [], checks: [], exclusions: [], foreignKeys: [], indexes: [] }
 * ```
 */
export interface TableDef {
  readonly name: string
  /** `RANGE (created_at)` for a partitioned table. */
  readonly partitionKey: string | undefined
  /** The parent and bound (`FOR VALUES FROM (...) TO (...)`, `DEFAULT`) of a partition. */
  readonly partitionOf: { readonly parent: string; readonly bound: string } | undefined
  readonly columns: readonly ColumnDef[]
  readonly primaryKey: KeyDef | undefined
  readonly uniques: readonly KeyDef[]
  readonly checks: readonly CheckDef[]
  readonly exclusions: readonly ExclusionDef[]
  readonly foreignKeys: readonly ForeignKeyDef[]
  readonly indexes: readonly IndexDef[]
}

/**
 * An enum type.
 *
 * @example
 * ```ts
 * const e: EnumDef = { name: 'mood', labels: ['happy', 'sad'] }
 * ```
 */
export interface EnumDef {
  readonly name: string
  readonly labels: readonly string[]
}

/**
 * A domain type.
 *
 * @example
 * ```ts
 * const d: DomainDef = { name: 'positive', baseType: 'numeric', notNull: false, default: undefined, collation: undefined, checks: [{ name: 'positive_check', definition: 'CHECK ((VALUE > (0)::numeric))' }] }
 * ```
 */
export interface DomainDef {
  readonly name: string
  readonly baseType: string
  readonly notNull: boolean
  readonly default: string | undefined
  readonly collation: string | undefined
  readonly checks: readonly CheckDef[]
}

/**
 * A sequence (serial columns and standalone sequences; identity columns make their own).
 *
 * @example
 * ```ts
 * const s: SequenceDef = { name: 'authors_id_seq', dataType: 'integer', start: '1', increment: '1', min: '1', max: '2147483647', cache: '1', cycle: false, ownedBy: { table: 'authors', column: 'id' } }
 * ```
 */
export interface SequenceDef {
  readonly name: string
  readonly dataType: string
  readonly start: string
  readonly increment: string
  readonly min: string
  readonly max: string
  readonly cache: string
  readonly cycle: boolean
  readonly ownedBy: { readonly table: string; readonly column: string } | undefined
}

/**
 * What the catalog says about a template tenant schema.
 *
 * @example
 * ```ts
 * const template: TemplateSchema = await introspectTemplate(pool, 'tenant_1')
 * template.tables.map((t) => t.name) // ['accounts', 'transactions']
 * ```
 */
export interface TemplateSchema {
  readonly schema: string
  readonly tables: readonly TableDef[]
  readonly enums: readonly EnumDef[]
  readonly domains: readonly DomainDef[]
  readonly sequences: readonly SequenceDef[]
  /** Installed extensions that let gin / gist indexes lead with a scalar tenant column. */
  readonly extensions: { readonly btreeGin: boolean; readonly btreeGist: boolean }
  /** Things the introspection saw and could not carry over as they are. */
  readonly notes: readonly string[]
}

/**
 * The tenant-aware target: every table with the tenant column first and every
 * key, index and tenant-table foreign key led by it.
 *
 * @example
 * ```ts
 * const plan: TenantSchemaPlan = planTenantSchema(template, { targetSchema: 'public' })
 * plan.tables[0]?.columns[0]?.name // 'tenant_id'
 * ```
 */
export interface TenantSchemaPlan {
  readonly templateSchema: string
  readonly targetSchema: string
  readonly tenantColumn: string
  readonly tenantIdType: 'bigint' | 'integer' | 'uuid' | 'text'
  readonly tenantsTable: { readonly schema: string; readonly table: string }
  readonly tables: readonly TableDef[]
  readonly enums: readonly EnumDef[]
  readonly domains: readonly DomainDef[]
  readonly sequences: readonly SequenceDef[]
  /** Foreign keys made `DEFERRABLE INITIALLY DEFERRED` because they close a cycle. */
  readonly deferredForeignKeys: readonly string[]
  readonly notes: readonly string[]
}
