import { quoteIdent, quoteQualified } from '../sql/quote.js'
import { type SqlContext, type Statement, sourceExpression } from './copy-sql.js'
import type { TablePlan } from './plan.js'

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
  const tc = quoteIdent(ctx.tenantColumn ?? 'tenant_id')
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
