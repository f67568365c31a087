import { DEFAULTS } from '../sql/defaults.js'
import { quoteIdent, quoteQualified } from '../sql/quote.js'
import type { TenantIdType } from '../tenants/id-types.js'
import type { TablePlan } from './plan.js'
import { remapExpression } from './remap-sql.js'
import { type ChecksumKind, rowChecksum } from './row-checksum.js'

/**
 * A statement and its bound parameters.
 */
export interface Statement {
  readonly text: string
  readonly values: unknown[]
}

/**
 * What every statement for one tenant's table needs to know.
 * @internal
 */
export interface SqlContext {
  readonly targetSchema: string
  readonly sourceSchema: string
  readonly idType: TenantIdType
  readonly tenantId: string
  /** The tenant column of the target tables; `tenant_id` by default. */
  readonly tenantColumn?: string
  /** The schema of `tenants`; the target schema by default. */
  readonly tenantsSchema?: string
}

/** The quoted tenant column. */
function tc(ctx: SqlContext): string {
  return quoteIdent(ctx.tenantColumn ?? DEFAULTS.tenantColumn)
}

/**
 * A table's own rows, for `FROM` or `DELETE FROM`: `ONLY` for a plain table, so the rows of
 * its inheritance children (tables of their own, read, counted and written as such) are not
 * taken twice; a partitioned table holds its partitions' rows.
 *
 * @internal
 * @example
 * ```ts
 * ownRows('public', { name: 'hist', partitioned: false }, 't') // 'only "public"."hist" t'
 * ```
 */
export function ownRows(
  schema: string,
  table: { readonly name: string; readonly partitioned: boolean },
  alias = '',
): string {
  const only = table.partitioned ? '' : 'only '
  return `${only}${quoteQualified(schema, table.name)}${alias ? ` ${alias}` : ''}`
}

/** `FROM` of the source table; `ONLY` for a plain table so inheritance children are not read twice. */
function sourceFrom(ctx: SqlContext, t: TablePlan): string {
  return ownRows(ctx.sourceSchema, t.source, 's')
}

/**
 * The expression that yields a source column as the target receives it: the
 * column itself, a cast when the types differ (PostgreSQL's own between built-in types,
 * int to bigint or real to double precision; through text otherwise, enum to enum), or the new id looked up in the id map (remap strategy). `$1` is the
 * tenant id; table names for the id map are added as parameters.
 *
 * @example
 * ```ts
 * sourceExpression(table, 'author_id', values) // 'coalesce((select m.new_id from "public"."rowtenancy_id_map" m where ...), ...)::bigint'
 * ```
 * @internal
 */
export function sourceExpression(
  ctx: SqlContext,
  t: TablePlan,
  column: string,
  values: unknown[],
): string {
  const col = `s.${quoteIdent(column)}`
  const targetType = t.target.columns.find((c) => c.name === column)?.type ?? 'text'
  const remap = t.remapColumns.get(column)
  if (remap) return remapExpression(ctx, t, column, remap, targetType, values)
  const cast = t.casts.get(column)
  if (cast === undefined) return col
  return t.directCasts?.has(column) ? `${col}::${cast}` : `${col}::text::${cast}`
}

/**
 * `INSERT INTO target (tenant_id, cols) SELECT $1, cols FROM source`: the one
 * statement that copies a tenant's table, server side. `tenant`: how the text names
 * the tenant id, the parameter `$1` (the default) or a quoted literal for a statement
 * sent with others in one round trip (then `values` is empty; not for remapped keys,
 * whose lookups take parameters).
 *
 * @example
 * ```ts
 * insertStatement(ctx, table).text
 * // 'insert into "public"."book" ("tenant_id", "id", "title") select $1::bigint, s."id", s."title" from only "tenant_7"."book" s'
 * ```
 */
export function insertStatement(ctx: SqlContext, t: TablePlan, tenant = '$1'): Statement {
  const values: unknown[] = [ctx.tenantId]
  const exprs = t.insertColumns.map((c) => sourceExpression(ctx, t, c, values))
  const cols = [tc(ctx), ...t.insertColumns.map(quoteIdent)].join(', ')
  const overriding = t.overriding ? ' overriding system value' : ''
  return {
    text:
      `insert into ${quoteQualified(ctx.targetSchema, t.name)} (${cols})${overriding} ` +
      `select ${tenant}::${ctx.idType}, ${exprs.join(', ')} from ${sourceFrom(ctx, t)}`,
    values: literalTenant(tenant, values),
  }
}

/** The values of a statement that names the tenant as `tenant`: none for a literal. */
function literalTenant(tenant: string, values: unknown[]): unknown[] {
  if (tenant === '$1') return values
  if (values.length > 1) throw new TypeError('A statement with remapped keys takes parameters.')
  return []
}

/**
 * Row count and an order-independent checksum (the sum of one hash per row, see
 * {@link rowChecksum}) of the source rows, as the target receives them.
 *
 * @example
 * ```ts
 * sourceChecksumStatement(ctx, table).text
 * // `select count(*)::int8 as n, 'r2:' || coalesce(sum(hashint4extended(0, hash_record_extended(row(s."id", s."title" collate "C"), 0))), 0)::text as sum from only "tenant_7"."book" s where $1::text is not null`
 * ```
 */
export function sourceChecksumStatement(
  ctx: SqlContext,
  t: TablePlan,
  kind: ChecksumKind = 'typed',
): Statement {
  const values: unknown[] = [ctx.tenantId]
  const exprs = t.columns.map((c) => sourceExpression(ctx, t, c, values))
  // `$1` must appear so its type is known even when no expression uses it.
  return {
    text:
      `select count(*)::int8 as n, ${rowChecksum(kind, t, exprs)} as sum ` +
      `from ${sourceFrom(ctx, t)} where $1::text is not null`,
    values,
  }
}

/**
 * The same count and checksum over the tenant's rows in the target table.
 *
 * @example
 * ```ts
 * targetChecksumStatement(ctx, table).text
 * // `select count(*)::int8 as n, 'r2:' || ... as sum from "public"."book" t where t."tenant_id" = $1::bigint`
 * ```
 */
export function targetChecksumStatement(
  ctx: SqlContext,
  t: TablePlan,
  kind: ChecksumKind = 'typed',
): Statement {
  const cols = t.columns.map((c) => `t.${quoteIdent(c)}`)
  return {
    text:
      `select count(*)::int8 as n, ${rowChecksum(kind, t, cols)} as sum ` +
      `from ${ownRows(ctx.targetSchema, t.target, 't')} where t.${tc(ctx)} = $1::${ctx.idType}`,
    values: [ctx.tenantId],
  }
}

/**
 * One statement counting, per foreign key of the target table, the tenant's rows
 * whose key points nowhere (MATCH SIMPLE: a row with a NULL key column is fine);
 * one column per key, named by its index in `fks`. Used when the copy ran with
 * `session_replication_role = replica`, which skips the foreign-key triggers. The
 * key from `tenant_id` to `tenants` is left out: every copied row carries the
 * tenant's id, and its `tenants` row exists in the same transaction.
 * `undefined` when there is nothing to check. `tenant` is how the text names the
 * tenant id: the parameter `$1` (the default), or a quoted literal for a statement
 * sent with others in one round trip (then `values` is empty).
 *
 * @example
 * ```ts
 * orphanStatement(ctx, table)?.statement.text
 * // 'select (select count(*) from "public"."book" c where c."tenant_id" = $1::bigint and ... not exists (...))::int8 as "0"'
 * ```
 */
export function orphanStatement(
  ctx: SqlContext,
  t: TablePlan,
  tenant = '$1',
): { fks: string[]; statement: Statement } | undefined {
  const column = ctx.tenantColumn ?? DEFAULTS.tenantColumn
  const fks = t.target.foreignKeys.filter(
    (fk) =>
      !(
        fk.refTable === 'tenants' &&
        fk.refSchema === (ctx.tenantsSchema ?? ctx.targetSchema) &&
        fk.columns.length === 1 &&
        fk.columns[0] === column
      ),
  )
  if (fks.length === 0) return undefined
  const counts = fks.map((fk, i) => {
    const notNull = fk.columns.map((c) => `c.${quoteIdent(c)} is not null`).join(' and ')
    const match = fk.columns
      .map((c, j) => `p.${quoteIdent(fk.refColumns[j]!)} = c.${quoteIdent(c)}`)
      .join(' and ')
    // A tenant-leading key restricts the referenced side to this tenant's rows: a hash (or
    // merge) anti join reads them once. Any other key would hash every tenant's rows, so its
    // lookup stays a subquery (`offset 0` keeps it from becoming a join): one index probe per row.
    const tenantLeading = fk.columns.some((c, j) => c === column && fk.refColumns[j] === column)
    return (
      `(select count(*) from ${quoteQualified(ctx.targetSchema, t.name)} c ` +
      `where c.${tc(ctx)} = ${tenant}::${ctx.idType} and ${notNull} ` +
      `and not exists (select 1 from ${quoteQualified(fk.refSchema, fk.refTable)} p where ${match}` +
      `${tenantLeading ? '' : ' offset 0'}))::int8 as "${i}"`
    )
  })
  return {
    fks: fks.map((fk) => fk.name),
    statement: {
      text: `select ${counts.join(', ')}`,
      values: tenant === '$1' ? [ctx.tenantId] : [],
    },
  }
}

/**
 * Whether the target table holds any row of the tenant, as an SQL expression (`tenant` as for
 * {@link existingRowsStatement}).
 *
 * @example
 * ```ts
 * tenantRowsExist(ctx, book, "'7'")
 * // 'exists (select 1 from "public"."book" where "tenant_id" = \'7\'::bigint)'
 * ```
 * @internal
 */
export function tenantRowsExist(ctx: SqlContext, t: TablePlan, tenant = '$1'): string {
  return `exists (select 1 from ${quoteQualified(ctx.targetSchema, t.name)} where ${tc(ctx)} = ${tenant}::${ctx.idType})`
}

/**
 * Whether each target table already holds any row of the tenant (a copy on top
 * would duplicate rows, so the tenant is refused instead): one statement, one
 * boolean column per table, named by its index in `tables`. `tenant`: `$1` (the
 * default) or a quoted literal, as for {@link orphanStatement}.
 *
 * @example
 * ```ts
 * existingRowsStatement(ctx, [book]).text
 * // 'select exists (select 1 from "public"."book" where "tenant_id" = $1::bigint) as "0"'
 * ```
 */
export function existingRowsStatement(
  ctx: SqlContext,
  tables: readonly TablePlan[],
  tenant = '$1',
): Statement {
  const probes = tables.map((t, i) => `${tenantRowsExist(ctx, t, tenant)} as "${i}"`)
  return { text: `select ${probes.join(', ')}`, values: tenant === '$1' ? [ctx.tenantId] : [] }
}
