import type { Queryable } from '../sql/queryable.js'
import { quoteQualified } from '../sql/quote.js'

/**
 * A sequence that was moved above the largest id in its table.
 */
export interface SequenceAdjustment {
  readonly table: string
  readonly column: string
  readonly sequence: string
  /** The new last value. */
  readonly value: string
}

/**
 * Moves every serial / identity sequence of the given tables above the largest
 * value in its column, so new rows never collide with copied ids. Idempotent:
 * a sequence already above is left alone; a rerun (also after a crash) does the
 * same. Returns the sequences it moved.
 *
 * @example
 * ```ts
 * await adjustSequences(pool, 'public', ['tenants', 'book', 'author'])
 * // [{ table: 'book', column: 'id', sequence: 'book_id_seq', value: '1200' }]
 * ```
 */
export async function adjustSequences(
  db: Queryable,
  schema: string,
  tables: readonly string[],
): Promise<SequenceAdjustment[]> {
  const { rows } = await db.query(
    `select c.relname as table, a.attname as column,
            pg_get_serial_sequence(quote_ident(n.nspname) || '.' || quote_ident(c.relname), a.attname) as seq
       from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = $1 and c.relname = any($2::text[]) and a.attnum > 0 and not a.attisdropped
        and c.relkind in ('r', 'p') and format_type(a.atttypid, null) in ('smallint', 'integer', 'bigint')
      order by 1, 2`,
    [schema, tables],
  )
  const out: SequenceAdjustment[] = []
  for (const r of rows) {
    if (!r.seq) continue
    const max = await db.query(
      `select max(${quoteQualified(undefined, r.column)})::text as m from ${quoteQualified(schema, r.table)}`,
    )
    const m = max.rows[0]?.m as string | null
    if (m === null || m === undefined) continue
    const state = await db.query(
      `select pg_sequence_last_value($1::regclass)::text as last, s.seqstart::text as start
         from pg_sequence s where s.seqrelid = $1::regclass`,
      [r.seq],
    )
    const last = state.rows[0]?.last as string | null
    const start = state.rows[0]?.start as string
    const next = last === null ? BigInt(start) : BigInt(last) + 1n
    if (BigInt(m) < next) continue
    await db.query('select setval($1::regclass, $2::int8, true)', [r.seq, m])
    out.push({ table: r.table, column: r.column, sequence: r.seq, value: m })
  }
  return out
}
