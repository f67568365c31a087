import { MigrationError } from '../errors/index.js'
import { DEFAULTS } from '../sql/defaults.js'
import type { Queryable } from '../sql/queryable.js'
import { quoteIdent, quoteQualified } from '../sql/quote.js'
import type { SqlContext, Statement } from './copy-sql.js'
import { ID_MAP_TABLE } from './ledger.js'
import type { RemapColumn, TablePlan } from './plan.js'

/** The start of the text a missing mapping raises (as a failed cast), told apart by {@link remapFailure}. */
const REMAP_MARK = 'rowtenancy remap: '

/**
 * The error a copy failed with, with a missing mapping (see {@link remapExpression})
 * said plainly, with the fix; any other error as it is.
 *
 * @example
 * ```ts
 * remapFailure(err).message // 'rowtenancy remap: book.author_id of tenant 7 points at no row of author (source value 99). ...'
 * ```
 */
export function remapFailure(err: unknown): unknown {
  const message = err instanceof Error ? err.message : ''
  const at = message.indexOf(REMAP_MARK)
  if ((err as { code?: string } | undefined)?.code !== '22P02' || at < 0) return err
  const what = message.slice(at).replace(/"$/, '')
  return new MigrationError(
    `${what}. Nothing of the tenant was copied: fix or remove that row in the tenant schema ` +
      '(or add the row it points at), then rerun.',
    { cause: err },
  )
}

/** `''`, or the text of the scope columns' values (`row(...)::text`), the same on both sides of a lookup. */
function scopeText(alias: string, columns: readonly string[] | undefined): string {
  if (!columns || columns.length === 0) return "''::text"
  return `row(${columns.map((c) => `${alias}.${quoteIdent(c)}`).join(', ')})::text`
}

/** `FROM` of the source table (`ONLY` for a plain table, so inheritance children are not read twice). */
function sourceFrom(ctx: SqlContext, t: TablePlan): string {
  return `${t.source.partitioned ? '' : 'only '}${quoteQualified(ctx.sourceSchema, t.name)} s`
}

/**
 * The new value of a remapped source column: its old value (and scope) looked up in
 * the id map. A value with no mapping (a row pointing at a parent the tenant does not
 * have) stops the statement with an error naming the table, column and value; it
 * never becomes NULL. `$1` is the tenant id; the table name and the error text are
 * added to `values`.
 *
 * @example
 * ```ts
 * remapExpression(ctx, t, 'author_id', { kind: 'ref', table: 'author' }, 'bigint', values)
 * // 'coalesce((select m.new_id from "public"."rowtenancy_id_map" m where ...), case when ... end)::bigint'
 * ```
 */
export function remapExpression(
  ctx: SqlContext,
  t: TablePlan,
  column: string,
  remap: RemapColumn,
  targetType: string,
  values: unknown[],
): string {
  const col = `s.${quoteIdent(column)}`
  values.push(remap.table)
  const table = `$${values.length}`
  values.push(
    `${REMAP_MARK}${t.name}.${column} of tenant ${ctx.tenantId} points at no row of ${remap.table} (source value `,
  )
  const message = `$${values.length}`
  const scope = remap.scope ?? []
  const nulls = [col, ...scope.map((c) => `s.${quoteIdent(c)}`)].map((c) => `${c} is null`)
  return (
    `coalesce((select m.new_id from ${quoteQualified(ctx.targetSchema, ID_MAP_TABLE)} m where m.tenant_id = $1::text ` +
    `and m.table_name = ${table}::text and m.scope = ${scopeText('s', scope)} and m.old_id = ${col}), ` +
    `case when ${nulls.join(' or ')} then null else (${message}::text || ${col}::text || ')')::int8 end)::${targetType}`
  )
}

/**
 * Remap strategy: the statements that give every source row of the table a new key
 * value and record old -> new in the id map (run before any table is copied, so
 * self-references and cycles find their mapping). From the target's sequence or
 * identity; without one, the largest value + a row number: within the tenant for a
 * tenant-leading key, else under a transaction lock per table (taken in plan order,
 * held to commit, so concurrent tenants never draw the same values). Empty when the
 * table's key is not remapped.
 *
 * @example
 * ```ts
 * mapStatements(ctx, table)[0]?.text // 'insert into "public"."rowtenancy_id_map" ... nextval($3::regclass) ...'
 * ```
 */
export function mapStatements(ctx: SqlContext, t: TablePlan): Statement[] {
  const key = t.remapAllocation
  if (!key) return []
  const map = quoteQualified(ctx.targetSchema, ID_MAP_TABLE)
  const col = `s.${quoteIdent(key.column)}`
  const scope = scopeText('s', key.scope)
  const order = [...key.scope.map((c) => `s.${quoteIdent(c)}`), col].join(', ')
  const insert = `insert into ${map} (tenant_id, table_name, scope, old_id, new_id) select $1::text, $2::text, ${scope}, ${col}, `
  if (key.sequence) {
    return [
      {
        text: `${insert}nextval($3::regclass) from ${sourceFrom(ctx, t)} order by ${order}`,
        values: [ctx.tenantId, t.name, key.sequence],
      },
    ]
  }
  const target = quoteQualified(ctx.targetSchema, t.name)
  const tc = quoteIdent(ctx.tenantColumn ?? DEFAULTS.tenantColumn)
  const within = key.tenantScoped ? ` where x.${tc} = $3::${ctx.idType}` : ''
  const next =
    `(select coalesce(max(x.${quoteIdent(key.column)}), 0) from ${target} x${within})::int8 ` +
    `+ row_number() over (order by ${order}) from ${sourceFrom(ctx, t)}`
  const fill: Statement = {
    text: insert + next,
    values: [ctx.tenantId, t.name, ...(key.tenantScoped ? [ctx.tenantId] : [])],
  }
  if (key.tenantScoped) return [fill]
  // A statement of its own: the next one's snapshot then sees what the last holder committed.
  const lock: Statement = {
    text: "select pg_advisory_xact_lock(hashtext('rowtenancy.remap'), hashtext($1))",
    values: [target],
  }
  return [lock, fill]
}

/**
 * Runs {@link mapStatements} for every table, in the plan's order, inside the
 * caller's (the tenant's) transaction.
 *
 * @example
 * ```ts
 * await allocateIds(client, ctx, tables)
 * ```
 */
export async function allocateIds(
  db: Queryable,
  ctx: SqlContext,
  tables: readonly TablePlan[],
): Promise<void> {
  for (const t of tables) for (const s of mapStatements(ctx, t)) await db.query(s.text, s.values)
}
