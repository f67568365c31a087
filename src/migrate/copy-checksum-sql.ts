import { DEFAULTS } from '../sql/defaults.js'
import { quoteIdent, quoteQualified } from '../sql/quote.js'
import { type SqlContext, type Statement, sourceExpression } from './copy-sql.js'
import type { TablePlan } from './plan.js'

/**
 * The copy of one tenant's table and both sides of its verification in ONE
 * statement: the source rows are read once (as the target receives them), hashed,
 * and inserted; the rows the insert stored (its `RETURNING`, generated columns as
 * the target computed them) are hashed too. One scan of the source instead of
 * three (copy, source checksum, target checksum read back). Returns one row:
 * `source_n`, `source_sum`, `target_n`, `target_sum`, with the checksums of
 * {@link sourceChecksumStatement} and {@link targetChecksumStatement}.
 *
 * @example
 * ```ts
 * copyWithChecksumStatement(ctx, table).text
 * // 'with s as materialized (select s."id" as "id", ... from only "tenant_7"."book" s),
 * //  c as (insert into "public"."book" ("tenant_id", "id", ...) select $1::bigint, s."id", ... from s returning "id", ...)
 * //  select ...'
 * ```
 */
export function copyWithChecksumStatement(ctx: SqlContext, t: TablePlan): Statement {
  const values: unknown[] = [ctx.tenantId]
  const only = t.source.partitioned ? '' : 'only '
  // `x0, x1, ...`: the source expressions under names that cannot clash.
  const alias = (i: number) => `x${i}`
  const exprs = t.columns.map((c, i) => `${sourceExpression(ctx, t, c, values)} as ${alias(i)}`)
  const inserted = t.insertColumns.map((c) => `s.${alias(t.columns.indexOf(c))}`)
  const tc = quoteIdent(ctx.tenantColumn ?? DEFAULTS.tenantColumn)
  const cols = [tc, ...t.insertColumns.map(quoteIdent)].join(', ')
  const overriding = t.overriding ? ' overriding system value' : ''
  const sourceRow = t.columns.map((_c, i) => `s.${alias(i)}`).join(', ')
  const targetRow = t.columns.map((c) => `c.${quoteIdent(c)}`).join(', ')
  return {
    text:
      `with s as materialized (select ${exprs.join(', ')} from ${only}${quoteQualified(ctx.sourceSchema, t.name)} s ` +
      '), ' +
      `c as (insert into ${quoteQualified(ctx.targetSchema, t.name)} (${cols})${overriding} ` +
      `select $1::${ctx.idType}, ${inserted.join(', ')} from s ` +
      `returning ${t.columns.map(quoteIdent).join(', ')}) ` +
      `select (select count(*) from s)::int8 as source_n, ` +
      `(select coalesce(sum(hashtextextended(row(${sourceRow})::text, 0)), 0) from s)::text as source_sum, ` +
      `count(*)::int8 as target_n, coalesce(sum(hashtextextended(row(${targetRow})::text, 0)), 0)::text as target_sum ` +
      'from c',
    values,
  }
}

/**
 * The row count and checksum of {@link sourceChecksumStatement} for several tables
 * of one tenant in ONE statement (one round trip, each source table read once):
 * columns `"<i>.n"` and `"<i>.sum"`, `i` the table's index in `tables`.
 *
 * @example
 * ```ts
 * sourceChecksumsStatement(ctx, [author, book]).text
 * // 'select s0.n as "0.n", s0.sum as "0.sum", ... from lateral (select count(*)::int8 as n, ... from only "tenant_7"."author" s where $1::text is not null) s0, lateral (...) s1'
 * ```
 */
export function sourceChecksumsStatement(ctx: SqlContext, tables: readonly TablePlan[]): Statement {
  const values: unknown[] = [ctx.tenantId]
  const parts = tables.map((t) => {
    const exprs = t.columns.map((c) => sourceExpression(ctx, t, c, values))
    const only = t.source.partitioned ? '' : 'only '
    return (
      `select count(*)::int8 as n, coalesce(sum(hashtextextended(row(${exprs.join(', ')})::text, 0)), 0)::text as sum ` +
      `from ${only}${quoteQualified(ctx.sourceSchema, t.name)} s where $1::text is not null`
    )
  })
  return { text: batched(parts), values }
}

/**
 * The row count and checksum of {@link targetChecksumStatement} (the tenant's rows
 * in each target table) for several tables in ONE statement: columns `"<i>.n"` and
 * `"<i>.sum"`, `i` the table's index in `tables`.
 *
 * @example
 * ```ts
 * targetChecksumsStatement(ctx, [author, book]).text
 * // 'select s0.n as "0.n", ... from lateral (select count(*)::int8 as n, ... from "public"."author" t where t."tenant_id" = $1::bigint) s0, ...'
 * ```
 */
export function targetChecksumsStatement(ctx: SqlContext, tables: readonly TablePlan[]): Statement {
  const tc = quoteIdent(ctx.tenantColumn ?? DEFAULTS.tenantColumn)
  const parts = tables.map((t) => {
    const cols = t.columns.map((c) => `t.${quoteIdent(c)}`)
    return (
      `select count(*)::int8 as n, coalesce(sum(hashtextextended(row(${cols.join(', ')})::text, 0)), 0)::text as sum ` +
      `from ${quoteQualified(ctx.targetSchema, t.name)} t where t.${tc} = $1::${ctx.idType}`
    )
  })
  return { text: batched(parts), values: [ctx.tenantId] }
}

/** One-row aggregates side by side: `select s0.n as "0.n", s0.sum as "0.sum", ... from lateral (...) s0, ...`. */
function batched(parts: readonly string[]): string {
  const columns = parts.flatMap((_p, i) => [`s${i}.n as "${i}.n"`, `s${i}.sum as "${i}.sum"`])
  const from = parts.map((p, i) => `lateral (${p}) s${i}`).join(', ')
  return `select ${columns.join(', ')} from ${from}`
}
