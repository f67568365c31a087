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
  const tc = quoteIdent(ctx.tenantColumn ?? 'tenant_id')
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
