import type { ColumnInfo } from '../sql/catalog/model.js'
import { quoteIdent } from '../sql/quote.js'
import type { TablePlan } from './plan.js'

/**
 * How a checksum hashes each row.
 * - `typed`: `hash_record_extended` over the row, each column hashed by its type's own
 *   hash function where that hash tells values apart exactly, else by its text. Needs
 *   PostgreSQL 14+; for two sides in the same database (the migration: source schema
 *   and shared tables). About three times cheaper than `text`, and independent of
 *   session settings such as `TimeZone` and `DateStyle` for the types it hashes itself.
 * - `text`: `hashtextextended` of the row's text form; comparable across servers and
 *   versions when the text settings are pinned (the tenant lifecycle's export and move).
 */
export type ChecksumKind = 'typed' | 'text'

/** The start of every `typed` checksum, which tells it apart from a `text` one in the ledger. */
const TYPED = 'r1:'

/**
 * The kind of a recorded checksum: `typed` when it starts with the `typed` mark, else
 * `text` (the ledger of an earlier version, and `''` for a copy that was not verified,
 * which is then checked as `typed`).
 *
 * @example
 * ```ts
 * checksumKindOf('r1:-12345') // 'typed'
 * checksumKindOf('-12345')    // 'text'
 * ```
 */
export function checksumKindOf(recorded: string | undefined): ChecksumKind {
  return recorded === undefined || recorded === '' || recorded.startsWith(TYPED) ? 'typed' : 'text'
}

/**
 * Built-in types whose hash function tells every two distinct values apart (beyond
 * collisions) and depends on no setting: hashed as they are. By OID, fixed for
 * built-in types.
 */
const HASHED_AS_IS = new Set([
  '16', // boolean
  '17', // bytea
  '20', // bigint
  '21', // smallint
  '23', // integer
  '26', // oid
  '1082', // date
  '1083', // time without time zone
  '1114', // timestamp without time zone
  '1184', // timestamp with time zone
  '2950', // uuid
])

/** Text types: hashed as they are under the "C" collation (bytes, whatever the column's collation). */
const TEXT = new Set(['25', '1043']) // text, character varying

/**
 * The fields one column adds to the hashed row of a `typed` checksum: the value
 * itself where its type's hash is exact; a numeric with its scale (`1.5` and `1.50`
 * hash alike as values); else the value's binary form from its type's built-in send
 * function (exact, and no setting changes it: `-0` and `0`, `1 day` and `24 hours`,
 * an array's bounds, all tell apart); else, for a type without a built-in send
 * function, its text.
 */
function typedFields(column: ColumnInfo | undefined, value: string): string {
  const oid = column?.typeOid
  if (oid !== undefined && HASHED_AS_IS.has(oid)) return value
  if (oid !== undefined && TEXT.has(oid)) return `${value} collate "C"`
  if (oid === '1700') return `${value}, scale(${value})`
  if (column?.typeSend) return `pg_catalog.${quoteIdent(column.typeSend)}(${value})`
  return `${value}::text collate "C"`
}

/**
 * The order-independent checksum of a table's rows, as an aggregate expression:
 * the sum of one hash per row, as text (`0` for no rows). `values`: an SQL
 * expression per column of `t.columns`, in that order, of the column's target type.
 *
 * @example
 * ```ts
 * rowChecksum('typed', table, ['s."id"', 's."price"'])
 * // `'r1:' || coalesce(sum(hash_record_extended(row(s."id", s."price", scale(s."price")), 0)), 0)::text`
 * ```
 */
export function rowChecksum(kind: ChecksumKind, t: TablePlan, values: readonly string[]): string {
  if (kind === 'text') {
    return `coalesce(sum(hashtextextended(row(${values.join(', ')})::text, 0)), 0)::text`
  }
  const fields = t.columns.map((name, i) =>
    typedFields(
      t.target.columns.find((c) => c.name === name),
      values[i]!,
    ),
  )
  return `'${TYPED}' || coalesce(sum(hash_record_extended(row(${fields.join(', ')}), 0)), 0)::text`
}
