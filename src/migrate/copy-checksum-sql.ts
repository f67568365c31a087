import { DEFAULTS } from '../sql/defaults.js'
import { quoteIdent, quoteQualified } from '../sql/quote.js'
import { ownRows, type SqlContext, type Statement, sourceExpression } from './copy-sql.js'
import type { TablePlan } from './plan.js'
import { rowChecksum } from './row-checksum.js'

/**
 * The copy of one tenant's table and both sides of its verification in ONE
 * statement, so that the source is read in one snapshot (the statement's), whatever
 * is written to it meanwhile: the rows are inserted, the rows the insert stored (its
 * `RETURNING`, generated columns as the target computed them) are hashed, and the
 * source is hashed by a second scan in the same statement. A table with remapped
 * keys reads its source once into a materialized CTE instead (each remapped key is
 * an id-map lookup). Returns one row: `source_n`, `source_sum`, `target_n`,
 * `target_sum`, with the checksums of {@link sourceChecksumStatement} and
 * {@link targetChecksumStatement}. `tenant`: `$1` (the default) or a quoted literal,
 * as for {@link insertStatement}.
 *
 * @example
 * ```ts
 * copyWithChecksumStatement(ctx, table).text
 * // 'with c as (insert into "public"."book" ("tenant_id", "id", ...) select $1::bigint, s."id", ... from only "tenant_7"."book" s returning "id", ...),
 * //  s as (select count(*)::int8 as n, ... as sum from only "tenant_7"."book" s)
 * //  select s.n as source_n, s.sum as source_sum, t.n as target_n, t.sum as target_sum from s, (select ... from c) t'
 * ```
 */
export function copyWithChecksumStatement(ctx: SqlContext, t: TablePlan, tenant = '$1'): Statement {
  const values: unknown[] = [ctx.tenantId]
  const only = t.source.partitioned ? '' : 'only '
  const from = `${only}${quoteQualified(ctx.sourceSchema, t.name)} s`
  const exprs = t.columns.map((c) => sourceExpression(ctx, t, c, values))
  const tc = quoteIdent(ctx.tenantColumn ?? DEFAULTS.tenantColumn)
  const cols = [tc, ...t.insertColumns.map(quoteIdent)].join(', ')
  const insert =
    `insert into ${quoteQualified(ctx.targetSchema, t.name)} (${cols})` +
    `${t.overriding ? ' overriding system value' : ''} select ${tenant}::${ctx.idType}, `
  const returning = `returning ${t.columns.map(quoteIdent).join(', ')}`
  const target = `(select count(*)::int8 as n, ${rowChecksum(
    'typed',
    t,
    t.columns.map((c) => `c.${quoteIdent(c)}`),
  )} as sum from c) t`
  const select = 'select s.n as source_n, s.sum as source_sum, t.n as target_n, t.sum as target_sum'
  if (t.remapColumns.size === 0) {
    const inserted = t.insertColumns.map((c) => exprs[t.columns.indexOf(c)]!)
    return {
      text:
        `with c as (${insert}${inserted.join(', ')} from ${from} ${returning}), ` +
        `s as (select count(*)::int8 as n, ${rowChecksum('typed', t, exprs)} as sum from ${from}) ` +
        `${select} from s, ${target}`,
      values: tenant === '$1' ? values : [],
    }
  }
  if (tenant !== '$1') throw new TypeError('A statement with remapped keys takes parameters.')
  // `x0, x1, ...`: the source expressions under names that cannot clash.
  const alias = t.columns.map((_c, i) => `m.x${i}`)
  return {
    text:
      `with m as materialized (select ${exprs.map((e, i) => `${e} as x${i}`).join(', ')} from ${from}), ` +
      `c as (${insert}${t.insertColumns.map((c) => alias[t.columns.indexOf(c)]).join(', ')} from m ${returning}), ` +
      `s as (select count(*)::int8 as n, ${rowChecksum('typed', t, alias)} as sum from m) ` +
      `${select} from s, ${target}`,
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
      `select count(*)::int8 as n, ${rowChecksum('typed', t, exprs)} as sum ` +
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
      `select count(*)::int8 as n, ${rowChecksum('typed', t, cols)} as sum ` +
      `from ${ownRows(ctx.targetSchema, t.target, 't')} where t.${tc} = $1::${ctx.idType}`
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
