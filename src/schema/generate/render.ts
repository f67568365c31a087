import type {
  ColumnDef,
  CompositeTypeDef,
  DomainDef,
  EnumDef,
  ForeignKeyDef,
  KeyDef,
  SequenceDef,
  TableDef,
} from '../../sql/catalog/model.js'
import { quoteIdent, quoteLiteral, quoteQualified } from '../../sql/quote.js'
import { tenantPolicy } from '../rls-policy.js'
import { renderRlsEnable } from '../rls-render.js'
import type { TenantSchemaPlan } from './model.js'
import { uuidV7FunctionSql } from './uuid-v7.js'

/**
 * Options of {@link renderTenantSchema}.
 */
export interface RenderOptions {
  /** Append ENABLE / FORCE ROW LEVEL SECURITY and the isolation policy per table; true by default. */
  readonly rls?: boolean | undefined
  /**
   * Give uuid key columns a version 7 UUID default (`rowtenancy_uuid_v7()`,
   * created in the target schema), so new keys reveal nothing of other tenants'
   * inserts, unlike a shared sequence. Integer keys are left alone (noted).
   * Default false.
   */
  readonly uuidV7Keys?: boolean | undefined
}

/**
 * Renders a plan as an array of single SQL statements (Citus refuses several
 * commands in one string), to run in order in ONE transaction: the first is
 * `SET LOCAL search_path TO <target>, pg_catalog`, so the template's own
 * enums, domains, composite and range types and sequences, named unqualified in defaults and checks,
 * resolve in the target schema. Then: schema, types (created only when
 * missing), sequences, tables (partitions after their parents), sequence
 * ownership, unique indexes (a foreign key may reference one), foreign keys, other
 * indexes, and RLS.
 *
 * @example
 * ```ts
 * renderTenantSchema(plan)
 * // [
 * //   'SET LOCAL search_path TO "public", pg_catalog',
 * //   'CREATE SCHEMA IF NOT EXISTS "public"',
 * //   'CREATE TABLE "public"."books" ("tenant_id" bigint NOT NULL REFERENCES "public"."tenants" ("id"), "id" integer NOT NULL, ..., CONSTRAINT "books_pkey" PRIMARY KEY ("tenant_id", "id"))',
 * //   'ALTER TABLE "public"."books" ADD CONSTRAINT "books_author_id_fkey" FOREIGN KEY ("tenant_id", "author_id") REFERENCES "public"."authors" ("tenant_id", "id")',
 * //   'CREATE INDEX "books_title_idx" ON "public"."books" USING "btree" ("tenant_id", title)',
 * //   'alter table "public"."books" enable row level security', ...
 * // ]
 * ```
 */
export function renderTenantSchema(plan: TenantSchemaPlan, options: RenderOptions = {}): string[] {
  const schema = plan.targetSchema
  const table = (name: string) => quoteQualified(schema, name)
  const out: string[] = [
    `SET LOCAL search_path TO ${quoteIdent(schema)}, pg_catalog`,
    `CREATE SCHEMA IF NOT EXISTS ${quoteIdent(schema)}`,
  ]
  if (options.uuidV7Keys) out.push(uuidV7FunctionSql(quoteIdent(schema)))
  for (const e of plan.enums) out.push(createTypeIfMissing(schema, e.name, renderEnum(schema, e)))
  for (const t of typesInOrder(plan.domains, plan.compositeTypes ?? [])) {
    const create =
      'baseType' in t
        ? renderDomain(schema, t)
        : `CREATE TYPE ${quoteQualified(schema, t.name)} ${t.definition}`
    out.push(createTypeIfMissing(schema, t.name, create))
  }
  for (const s of plan.sequences) out.push(renderSequence(schema, s))
  for (const t of plan.tables) out.push(renderTable(schema, t))
  for (const s of plan.sequences) {
    if (s.ownedBy) {
      out.push(
        `ALTER SEQUENCE ${quoteQualified(schema, s.name)} OWNED BY ` +
          `${table(s.ownedBy.table)}.${quoteIdent(s.ownedBy.column)}`,
      )
    }
  }
  const index = (t: TableDef, i: TableDef['indexes'][number]) =>
    `CREATE ${i.unique ? 'UNIQUE ' : ''}INDEX ${quoteIdent(i.name)} ON ${table(t.name)} ` +
    `USING ${quoteIdent(i.method)} (${i.tail}`
  // Unique indexes before the foreign keys: a key may reference one (not only a constraint).
  for (const t of plan.tables) {
    for (const i of t.indexes) if (i.unique) out.push(index(t, i))
  }
  for (const t of plan.tables) {
    for (const fk of t.foreignKeys) {
      out.push(`ALTER TABLE ${table(t.name)} ADD ${renderForeignKey(fk)}`)
    }
  }
  for (const t of plan.tables) {
    for (const i of t.indexes) if (!i.unique) out.push(index(t, i))
  }
  if (options.rls ?? true) {
    for (const t of plan.tables) {
      const policy = tenantPolicy(
        { schema, name: t.name },
        { tenantColumn: plan.tenantColumn, tenantIdType: plan.tenantIdType },
      )
      out.push(...renderRlsEnable(policy))
    }
  }
  return out
}

/**
 * The domains, then the composite and range types, each moved after the ones it is over
 * or made of (`uses`): a domain over a composite or range type, or a composite with a
 * domain attribute, in either direction.
 */
function typesInOrder(
  domains: readonly DomainDef[],
  composites: readonly CompositeTypeDef[],
): (DomainDef | CompositeTypeDef)[] {
  const all = [...domains, ...composites]
  const byName = new Map(all.map((t) => [t.name, t]))
  const out: (DomainDef | CompositeTypeDef)[] = []
  const done = new Set<string>()
  const visit = (t: DomainDef | CompositeTypeDef) => {
    if (done.has(t.name)) return
    done.add(t.name)
    for (const u of t.uses ?? []) {
      const dep = byName.get(u)
      if (dep) visit(dep)
    }
    out.push(t)
  }
  for (const t of all) visit(t)
  return out
}

/**
 * Renders one `CREATE TABLE` (or `CREATE TABLE ... PARTITION OF`) statement with
 * its columns, primary key, unique, check and exclusion constraints inline.
 *
 * @example
 * ```ts
 * renderTable('public', table) // 'CREATE TABLE "public"."authors" ("tenant_id" bigint NOT NULL ..., CONSTRAINT "authors_pkey" PRIMARY KEY ("tenant_id", "id"))'
 * ```
 */
export function renderTable(schema: string, t: TableDef): string {
  const elements = [
    ...t.columns.map(renderColumn),
    ...(t.primaryKey ? [renderKey('PRIMARY KEY', t.primaryKey)] : []),
    ...t.uniques.map((u) => renderKey('UNIQUE', u)),
    ...t.checks.map((c) => `CONSTRAINT ${quoteIdent(c.name)} ${c.definition}`),
    ...t.exclusions.map(
      (x) => `CONSTRAINT ${quoteIdent(x.name)} EXCLUDE USING ${quoteIdent(x.method)} (${x.tail}`,
    ),
  ]
  const name = quoteQualified(schema, t.name)
  const partitionBy = t.partitionKey ? ` PARTITION BY ${t.partitionKey}` : ''
  if (t.partitionOf) {
    const list = elements.length > 0 ? ` (${elements.join(', ')})` : ''
    return (
      `CREATE TABLE ${name} PARTITION OF ${quoteQualified(schema, t.partitionOf.parent)}` +
      `${list} ${t.partitionOf.bound}${partitionBy}`
    )
  }
  return `CREATE TABLE ${name} (${elements.join(', ')})${partitionBy}`
}

function renderColumn(c: ColumnDef): string {
  let sql = `${quoteIdent(c.name)} ${c.type}`
  if (c.collation) sql += ` COLLATE ${c.collation}`
  if (c.generated !== undefined) sql += ` GENERATED ALWAYS AS (${c.generated}) STORED`
  if (c.identity) {
    sql += ` GENERATED ${c.identity} AS IDENTITY`
    if (c.identityOptions) sql += ` (${c.identityOptions})`
  }
  if (c.default !== undefined) sql += ` DEFAULT ${c.default}`
  if (c.notNull) sql += ' NOT NULL'
  if (c.references) {
    const r = c.references
    sql += ` REFERENCES ${quoteQualified(r.schema, r.table)} (${quoteIdent(r.column)})`
  }
  return sql
}

const columnList = (cols: readonly string[]) => `(${cols.map(quoteIdent).join(', ')})`

const deferral = (k: { deferrable: boolean; initiallyDeferred: boolean }) =>
  k.deferrable ? (k.initiallyDeferred ? ' DEFERRABLE INITIALLY DEFERRED' : ' DEFERRABLE') : ''

function renderKey(kind: 'PRIMARY KEY' | 'UNIQUE', k: KeyDef): string {
  const nulls = k.nullsNotDistinct ? ' NULLS NOT DISTINCT' : ''
  const include = k.include.length > 0 ? ` INCLUDE ${columnList(k.include)}` : ''
  return `CONSTRAINT ${quoteIdent(k.name)} ${kind}${nulls} ${columnList(k.columns)}${include}${deferral(k)}`
}

/**
 * Renders a foreign key as a table constraint (`CONSTRAINT ... FOREIGN KEY ...`).
 *
 * @example
 * ```ts
 * renderForeignKey(fk) // 'CONSTRAINT "c_parent_fkey" FOREIGN KEY ("tenant_id", "parent_id") REFERENCES "public"."c" ("tenant_id", "id") DEFERRABLE INITIALLY DEFERRED'
 * ```
 */
export function renderForeignKey(fk: ForeignKeyDef): string {
  let sql =
    `CONSTRAINT ${quoteIdent(fk.name)} FOREIGN KEY ${columnList(fk.columns)} ` +
    `REFERENCES ${quoteQualified(fk.refSchema, fk.refTable)} ${columnList(fk.refColumns)}`
  if (fk.match === 'FULL') sql += ' MATCH FULL'
  if (fk.onUpdate !== 'NO ACTION') sql += ` ON UPDATE ${fk.onUpdate}`
  if (fk.onDelete !== 'NO ACTION') {
    sql += ` ON DELETE ${fk.onDelete}`
    if (fk.onDeleteColumns.length > 0) sql += ` ${columnList(fk.onDeleteColumns)}`
  }
  return sql + deferral(fk)
}

function renderEnum(schema: string, e: EnumDef): string {
  return `CREATE TYPE ${quoteQualified(schema, e.name)} AS ENUM (${e.labels.map(quoteLiteral).join(', ')})`
}

function renderDomain(schema: string, d: DomainDef): string {
  let sql = `CREATE DOMAIN ${quoteQualified(schema, d.name)} AS ${d.baseType}`
  if (d.collation) sql += ` COLLATE ${d.collation}`
  if (d.default !== undefined) sql += ` DEFAULT ${d.default}`
  if (d.notNull) sql += ' NOT NULL'
  for (const c of d.checks) sql += ` CONSTRAINT ${quoteIdent(c.name)} ${c.definition}`
  return sql
}

function renderSequence(schema: string, s: SequenceDef): string {
  return (
    `CREATE SEQUENCE ${quoteQualified(schema, s.name)} AS ${s.dataType} INCREMENT BY ${s.increment} ` +
    `MINVALUE ${s.min} MAXVALUE ${s.max} START WITH ${s.start} CACHE ${s.cache}` +
    (s.cycle ? ' CYCLE' : ' NO CYCLE')
  )
}

/**
 * Wraps a `CREATE TYPE` / `CREATE DOMAIN` in a DO block that runs it only when
 * the schema has no type of that name (PostgreSQL has no `IF NOT EXISTS` for
 * them). The dollar-quote tag is chosen so it never occurs in the body.
 *
 * @example
 * ```ts
 * createTypeIfMissing('public', 'mood', `CREATE TYPE "public"."mood" AS ENUM ('a')`)
 * // 'DO $rowtenancy$ BEGIN IF NOT EXISTS (...) THEN CREATE TYPE ...; END IF; END $rowtenancy$'
 * ```
 * @internal
 */
export function createTypeIfMissing(schema: string, name: string, create: string): string {
  const body =
    'BEGIN IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ' +
    `ON n.oid = t.typnamespace WHERE n.nspname = ${quoteLiteral(schema)} ` +
    `AND t.typname = ${quoteLiteral(name)}) THEN ${create}; END IF; END`
  let tag = '$rowtenancy$'
  for (let i = 1; body.includes(tag); i++) tag = `$rowtenancy${i}$`
  return `DO ${tag} ${body} ${tag}`
}
