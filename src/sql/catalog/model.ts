/**
 * The one model of the catalog: what rowtenancy reads about tables, columns,
 * keys, indexes and types of a live database. Three readers fill it, each at
 * the depth its caller needs, from the queries in `queries.ts`:
 * - `readSchema` / `introspectTemplate`: one schema in full, as DDL parts
 *   (schema generation; `TableDef` and friends);
 * - `introspectSchemas`: many schemas at once, the copy-relevant summary of each
 *   table, partitions folded into their parent (migration; `TableInfo`);
 * - `loadTableFacts`: named tables with their RLS flags and tenant column
 *   (doctor; `TableFacts`).
 *
 * Expressions (defaults, checks, index tails, partition bounds) are SQL text as
 * PostgreSQL itself deparsed them with the schema first on the `search_path`,
 * so names of the schema's own objects are unqualified.
 */

/** A foreign key action. */
export type ForeignKeyAction = 'NO ACTION' | 'RESTRICT' | 'CASCADE' | 'SET NULL' | 'SET DEFAULT'

/** One column. */
export interface ColumnDef {
  readonly name: string
  /** The SQL type as `format_type` renders it (`text`, `numeric(10,2)`, `mood[]`). */
  readonly type: string
  readonly notNull: boolean
  /** The default expression (not for identity or generated columns). */
  readonly default?: string | undefined
  readonly identity?: 'ALWAYS' | 'BY DEFAULT' | undefined
  /** An identity column's sequence options that differ from the defaults (`START WITH 1000 INCREMENT BY 10`). */
  readonly identityOptions?: string | undefined
  /** The expression of a `GENERATED ALWAYS AS (...) STORED` column. */
  readonly generated?: string | undefined
  /** A `COLLATE` name, already quoted (`"C"`, `"pg_catalog"."C"`). */
  readonly collation?: string | undefined
  /** An inline `REFERENCES schema.table (column)` (the tenant column's link to `tenants`). */
  readonly references?: { readonly schema: string; readonly table: string; readonly column: string }
}

/** A primary key or unique constraint. */
export interface KeyDef {
  readonly name: string
  readonly columns: readonly string[]
  readonly include: readonly string[]
  readonly nullsNotDistinct: boolean
  readonly deferrable: boolean
  readonly initiallyDeferred: boolean
}

/** A foreign key. */
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

/** A check constraint, its definition as `pg_get_constraintdef` gives it. */
export interface CheckDef {
  readonly name: string
  readonly definition: string
}

/** An exclusion constraint: `EXCLUDE USING <method> (<tail>`. */
export interface ExclusionDef {
  readonly name: string
  readonly method: string
  /** Everything after `EXCLUDE USING <method> (`. */
  readonly tail: string
}

/** An index that backs no constraint: `CREATE [UNIQUE] INDEX name ON table USING <method> (<tail>`. */
export interface IndexDef {
  readonly name: string
  readonly unique: boolean
  readonly method: string
  /** The key columns / expressions (for reports; the SQL comes from `tail`). */
  readonly keys: readonly string[]
  /** Everything after `USING <method> (`: keys, `INCLUDE`, `WITH`, `WHERE`. */
  readonly tail: string
}

/** One table (plain, partitioned, or a partition of another). */
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

/** An enum type. */
export interface EnumDef {
  readonly name: string
  readonly labels: readonly string[]
}

/** A domain type. */
export interface DomainDef {
  readonly name: string
  readonly baseType: string
  readonly notNull: boolean
  readonly default: string | undefined
  readonly collation: string | undefined
  readonly checks: readonly CheckDef[]
  /** The template's domains, composite and range types it is over (also as arrays): created first. */
  readonly uses?: readonly string[]
}

/** A sequence (serial columns and standalone sequences; identity columns make their own). */
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

/** A composite or range type of the template schema, carried over as it is. */
export interface CompositeTypeDef {
  readonly name: string
  /** What follows `CREATE TYPE name`: `AS (street text, zip character varying(10))`, `AS RANGE (SUBTYPE = float8)`. */
  readonly definition: string
  /** The template's domains, composite and range types its attributes or subtype are of (also as arrays). */
  readonly uses?: readonly string[]
}

/** What the catalog says about a template tenant schema. */
export interface TemplateSchema {
  readonly schema: string
  readonly tables: readonly TableDef[]
  readonly enums: readonly EnumDef[]
  readonly domains: readonly DomainDef[]
  /** Composite and range types the columns use, each after the ones it uses (see `uses` for the order with domains). */
  readonly compositeTypes?: readonly CompositeTypeDef[]
  readonly sequences: readonly SequenceDef[]
  /** Installed extensions that let gin / gist indexes lead with a scalar tenant column. */
  readonly extensions: { readonly btreeGin: boolean; readonly btreeGist: boolean }
  /** Things the introspection saw and could not carry over as they are. */
  readonly notes: readonly string[]
}

/** A column of a table as the migration sees it. */
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
  /**
   * The type's binary send function when it is a built-in one (in `pg_catalog`; a
   * domain's is its base type's): an exact form of a value that no setting changes.
   */
  readonly typeSend?: string
  /** The expression of a generated column, deparsed, its own schema left unqualified. */
  readonly generation?: string
  /** `pg_type.typtype`: `b` base, `e` enum, `d` domain, ... */
  readonly typeKind: string
  /** The labels of an enum column, in order. */
  readonly enumLabels?: readonly string[]
}

/** A foreign key as the migration needs it: columns on both sides, deferrability. */
export type ForeignKeyInfo = Pick<
  ForeignKeyDef,
  'name' | 'columns' | 'refSchema' | 'refTable' | 'refColumns' | 'deferrable'
>

/** A table (plain or partitioned; partitions are folded into their parent). */
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

/** The tables of each schema, by schema name then table name. */
export type SchemaTables = Map<string, Map<string, TableInfo>>

/** What the doctor knows about one tenant-aware table. */
export interface TableFacts {
  readonly oid: number
  readonly schema: string
  readonly name: string
  /** `schema.name` as the user reads it. */
  readonly qualified: string
  /** `"schema"."name"` for SQL in fixes. */
  readonly quoted: string
  readonly rlsEnabled: boolean
  readonly rlsForced: boolean
  /** attnum of the tenant column, null when the table has none. */
  readonly tenantAttnum: number | null
  readonly tenantNotNull: boolean
  readonly tenantType: string | null
}
