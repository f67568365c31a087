import type { ColumnInfo } from '../sql/catalog/model.js'
import type { Queryable } from '../sql/queryable.js'
import type { TablePlan } from './plan.js'

/**
 * How a checksum hashes each row.
 * - `typed`: each row hashed from an exact form of each column (see `typedField`),
 *   the field hashes combined by `hash_record_extended` and mixed once more by
 *   `hashint4extended(0, h)`, whose seed takes all 64 bits of `h` through lookup3's mix
 *   (`hash_record_extended` adds its field hashes linearly: summed over rows, values
 *   swapped between rows would cancel out). Needs PostgreSQL 14+; for two sides in
 *   the same database (the migration: source schema and shared tables). About 40%
 *   cheaper than `text`; for columns of built-in scalar types independent of session
 *   settings (`TimeZone`, `DateStyle`, `IntervalStyle`, `extra_float_digits`,
 *   `lc_monetary`) and of `client_encoding`.
 * - `typed-r1`: `typed` as an earlier version recorded it, the row's hash mixed by a second
 *   `hash_record_extended` of its `int8send` (a third more costly); only to check a ledger
 *   that holds it.
 * - `text`: `hashtextextended` of the row's text form; comparable across servers and
 *   versions when the text settings are pinned (the tenant lifecycle's export and move).
 */
export type ChecksumKind = 'typed' | 'typed-r1' | 'text'

/** The start of every `typed` checksum, which tells it apart from the other kinds in the ledger. */
const TYPED = 'r2:'
/** The start of a `typed-r1` checksum. */
const TYPED_R1 = 'r1:'

/**
 * The kind of a recorded checksum, by its start: `typed` (and `''` for a copy that was
 * not verified, which is then checked as `typed`), `typed-r1`, else `text` (the ledger of
 * an earlier version).
 *
 * @example
 * ```ts
 * checksumKindOf('r2:-12345') // 'typed'
 * checksumKindOf('r1:-12345') // 'typed-r1'
 * checksumKindOf('-12345')    // 'text'
 * ```
 */
export function checksumKindOf(recorded: string | undefined): ChecksumKind {
  if (recorded === undefined || recorded === '' || recorded.startsWith(TYPED)) return 'typed'
  return recorded.startsWith(TYPED_R1) ? 'typed-r1' : 'text'
}

/**
 * Built-in types whose own hash is exact enough for a checksum: no two values hash
 * alike by construction (random collisions aside). Not `bigint` and the time types,
 * whose hash folds 64 bits into 32 (`-1` and `4294967295` collide), nor `numeric`,
 * whose hash ignores the sign and the scale. By OID, fixed for built-in types.
 */
const HASHED_AS_IS = new Set([
  '16', // boolean
  '17', // bytea
  '21', // smallint
  '23', // integer
  '26', // oid
  '1082', // date
  '2950', // uuid
])

/** Text types: hashed as they are under the "C" collation (bytes, whatever the column's collation). */
const TEXT = new Set(['25', '1043']) // text, character varying

/**
 * Built-in send functions whose binary form is exact and fixed: no setting, no client
 * encoding and no type OID goes into it (unlike `array_send` and `record_send`, which
 * carry element OIDs that a dump and restore changes, or the text types' sends, which
 * convert to the client encoding). A domain's send is its base type's.
 */
const EXACT_SENDS = new Set([
  'int8send',
  'float4send',
  'float8send',
  'numeric_send',
  'time_send',
  'timetz_send',
  'timestamp_send',
  'timestamptz_send',
  'interval_send',
  'cash_send',
  'inet_send',
  'cidr_send',
  'macaddr_send',
  'macaddr8_send',
  'bit_send',
  'varbit_send',
  'pg_lsn_send',
  'point_send',
  'lseg_send',
  'line_send',
  'box_send',
  'path_send',
  'poly_send',
  'circle_send',
  'int2send',
  'int4send',
  'oidsend',
  'boolsend',
  'date_send',
  'uuid_send',
  'byteasend',
])

/**
 * The field one column adds to the hashed row of a `typed` checksum: the value itself
 * where its type's hash is exact; else its binary form from an exact built-in send
 * function (`-0` and `0`, `1 day` and `24 hours`, `1.5` and `1.50`, `12.5` and `-12.5`
 * all differ); else its text under "C" (arrays, composites, enums, json, types from
 * extensions), which is exact but, for some types, follows session settings.
 */
function typedField(column: ColumnInfo | undefined, value: string): string {
  const oid = column?.typeOid
  if (oid !== undefined && HASHED_AS_IS.has(oid)) return value
  if (oid !== undefined && TEXT.has(oid)) return `${value} collate "C"`
  if (column?.typeSend && EXACT_SENDS.has(column.typeSend)) {
    return `pg_catalog.${column.typeSend}(${value})`
  }
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
 * // `'r2:' || coalesce(sum(pg_catalog.hashint4extended(0,
 * //    pg_catalog.hash_record_extended(row(s."id", pg_catalog.numeric_send(s."price")), 0))), 0)::text`
 * ```
 */
export function rowChecksum(kind: ChecksumKind, t: TablePlan, values: readonly string[]): string {
  if (kind === 'text') {
    return `coalesce(sum(hashtextextended(row(${values.join(', ')})::text, 0)), 0)::text`
  }
  const fields = t.columns.map((name, i) =>
    typedField(
      t.target.columns.find((c) => c.name === name),
      values[i]!,
    ),
  )
  const row = `pg_catalog.hash_record_extended(row(${fields.join(', ')}), 0)`
  if (kind === 'typed-r1') {
    const mixed = `pg_catalog.hash_record_extended(row(pg_catalog.int8send(${row})), 0)`
    return `'${TYPED_R1}' || coalesce(sum(${mixed}), 0)::text`
  }
  return `'${TYPED}' || coalesce(sum(pg_catalog.hashint4extended(0, ${row})), 0)::text`
}

/**
 * The settings a checksum is computed under, for the rest of the open transaction,
 * as `SET LOCAL` statements in one string (forwarded to the workers on Citus once
 * `citus.propagate_set_commands = 'local'` is set): the text form of arrays,
 * composites and other types hashed as text follows them, and a checksum recorded
 * in the ledger is compared with one computed later, in another session.
 *
 * @example
 * ```ts
 * await client.query(`begin; ${CHECKSUM_SETTINGS}`)
 * ```
 */
export const CHECKSUM_SETTINGS =
  "set local timezone = 'UTC'; set local datestyle = 'ISO, MDY'; set local intervalstyle = 'postgres'; " +
  "set local extra_float_digits = 1; set local bytea_output = 'hex'"

/**
 * Pins {@link CHECKSUM_SETTINGS} for the rest of the caller's transaction.
 *
 * @example
 * ```ts
 * await pinChecksumSettings(client) // inside BEGIN ... COMMIT
 * ```
 */
export async function pinChecksumSettings(db: Queryable): Promise<void> {
  await db.query(CHECKSUM_SETTINGS)
}
