import { MigrationError } from '../errors/index.js'
import type { Queryable } from '../sql/queryable.js'
import { quoteIdent, quoteQualified } from '../sql/quote.js'

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
 * Every (table, column, sequence) of the tables `$2` of schema `$1` where the column draws
 * from the sequence: its serial / identity sequence (`pg_get_serial_sequence`), or any
 * sequence its default depends on (`nextval('shared_seq')`, owned or not); `integer` tells
 * whether the column is an integer one (its values show how far the sequence went).
 */
const COLUMN_SEQUENCES = `
select c.relname as table, a.attname as column, q.seq, c.oid as relid,
       format_type(a.atttypid, null) in ('smallint', 'integer', 'bigint') as integer
  from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
 cross join lateral (
        select pg_get_serial_sequence(quote_ident(n.nspname) || '.' || quote_ident(c.relname), a.attname) as seq
         union
        select quote_ident(sn.nspname) || '.' || quote_ident(sq.relname)
          from pg_attrdef ad
          join pg_depend d on d.classid = 'pg_attrdef'::regclass and d.objid = ad.oid
                          and d.refclassid = 'pg_class'::regclass
          join pg_class sq on sq.oid = d.refobjid and sq.relkind = 'S'
          join pg_namespace sn on sn.oid = sq.relnamespace
         where ad.adrelid = c.oid and ad.adnum = a.attnum) q
 where n.nspname = $1 and c.relname = any($2::text[]) and a.attnum > 0 and not a.attisdropped
   and c.relkind in ('r', 'p') and q.seq is not null`

/**
 * For the column `x.column` of the table `x.relid`: a valid, total btree index whose second
 * key is that column and whose first key (`lead`, the tenant column of a shared table's
 * `(tenant_id, id)` key) orders as `ORDER BY lead` does (default operator classes, the
 * column's collation, ascending with nulls last or descending with nulls first), so that
 * the column's furthest value is found by one index descent per distinct `lead` value
 * instead of a scan of the table (see {@link furthestValue}). Not a composite lead (a row
 * value with a null field is neither null nor not null, which the scan's steps test). None
 * on a Citus cluster (a recursive query over a distributed table is not pushed down).
 */
const LEADING_INDEX = `
select i.indexrelid::int8::text as index, la.attname as lead
  from pg_catalog.pg_index i
  join pg_catalog.pg_class ic on ic.oid = i.indexrelid
  join pg_catalog.pg_am am on am.oid = ic.relam
  join pg_catalog.pg_attribute la on la.attrelid = i.indrelid and la.attnum = i.indkey[0]
  join pg_catalog.pg_attribute ca on ca.attrelid = i.indrelid and ca.attnum = i.indkey[1]
  join pg_catalog.pg_opclass o0 on o0.oid = i.indclass[0]
  join pg_catalog.pg_opclass o1 on o1.oid = i.indclass[1]
 where i.indrelid = x.relid and ca.attname = x.column and am.amname = 'btree'
   and i.indnkeyatts >= 2 and i.indisvalid and i.indpred is null
   and o0.opcdefault and o1.opcdefault and i.indcollation[0] = la.attcollation
   and (i.indoption[0] & 3) in (0, 3)
   -- not a composite (nor a domain over one): a row value with a null field is neither null nor not null
   and not exists (with recursive b(oid) as (select la.atttypid union all
                     select t.typbasetype from pg_catalog.pg_type t join b on t.oid = b.oid where t.typtype = 'd')
                   select from b join pg_catalog.pg_type t on t.oid = b.oid where t.typtype = 'c')
   and not exists (select from pg_catalog.pg_extension where extname = 'citus')
 order by i.indisprimary desc, i.indisunique desc, i.indexrelid
 limit 1`

/**
 * Moves every serial / identity sequence of the given tables, and every sequence an
 * integer column's default draws from (`nextval('shared_seq')`, owned or not), above the
 * largest value in its columns, so new rows never collide with copied ids (a descending sequence: below the smallest). Idempotent:
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
  return moveSequencesOf(db, schema, await readSequenceColumns(db, schema, tables))
}

/**
 * The first step of {@link adjustSequences}: the integer columns of the tables that draw from
 * a sequence, with each sequence's state, in one statement; with `looseScan`, the index of
 * a loose scan is looked up only for the tables it names. It may be read ahead, while rows
 * are still being copied: a sequence only moves forward meanwhile, and the move reads its
 * position again.
 *
 * @example
 * ```ts
 * const columns = await readSequenceColumns(pool, 'public', ['book'])
 * // ... copy ...
 * await moveSequencesOf(pool, 'public', columns)
 * ```
 * @internal
 */
export async function readSequenceColumns(
  db: Queryable,
  schema: string,
  tables: readonly string[],
  options: MoveOptions = {},
): Promise<readonly SequenceColumn[]> {
  // The index lookup costs more to plan than the rest of the statement: it is left out when
  // no table is to be scanned loosely.
  const loose = tables.filter(options.looseScan ?? (() => true))
  const { rows } = await db.query(
    `select x.table, x.column, x.seq, pg_sequence_last_value(x.seq::regclass)::text as last,
            s.seqstart::text as start, s.seqincrement < 0 as down,
            pg_catalog.has_sequence_privilege(x.seq::regclass, 'SELECT') as readable,
            ${loose.length > 0 ? 'ix.index, ix.lead' : 'null::text as index, null::text as lead'}
       from (${COLUMN_SEQUENCES}) x
       join pg_sequence s on s.seqrelid = x.seq::regclass
       ${loose.length > 0 ? `left join lateral (${LEADING_INDEX}) ix on x.table = any($3::text[])` : ''}
      where x.integer
      order by 1, 2`,
    loose.length > 0 ? [schema, tables, loose] : [schema, tables],
  )
  return rows as SequenceColumn[]
}

/** A row of {@link readSequenceColumns}. */
export interface SequenceColumn {
  readonly table: string
  readonly column: string
  /** Quoted, qualified. */
  readonly seq: string
  /** Its last value, `null` before its first `nextval` (or after a restart). */
  readonly last: string | null
  readonly start: string
  readonly down: boolean
  /** This role may read the sequence (SELECT). */
  readonly readable: boolean
  /** The oid of an index on `(lead, column, ...)` (see {@link LEADING_INDEX}), else `null`. */
  readonly index?: string | null
  /** That index's first key column. */
  readonly lead?: string | null
}

/**
 * The second step of {@link adjustSequences}: every column's furthest value and the moves,
 * in one statement. Returns the sequences it moved.
 *
 * @example
 * ```ts
 * await moveSequencesOf(pool, 'public', await readSequenceColumns(pool, 'public', ['book']))
 * ```
 * @internal
 */
export async function moveSequencesOf(
  db: Queryable,
  schema: string,
  rows: readonly SequenceColumn[],
  options: MoveOptions = {},
): Promise<SequenceAdjustment[]> {
  if (rows.length === 0) return []
  // Per sequence: the columns drawing from it, and the value it gives next as read. A sequence
  // several columns draw from (a shared one) goes past the furthest of them all; a descending
  // one (negative increment) below the smallest.
  const bySequence = new Map<string, { down: boolean; next: bigint; columns: number[] }>()
  for (const [i, r] of rows.entries()) {
    const down = r.down === true
    const next =
      r.last === null ? BigInt(r.start) : down ? BigInt(r.last) - 1n : BigInt(r.last) + 1n
    const entry = bySequence.get(r.seq) ?? { down, next, columns: [] }
    entry.columns.push(i)
    bySequence.set(r.seq, entry)
  }
  const loose = options.looseScan ?? (() => true)
  const furthest = rows.map(
    (r, i) =>
      `${furthestValue(schema, loose(r.table) ? r : { ...r, index: null })}::int8 as "${i}"`,
  )
  const values: unknown[] = []
  const moves = [...bySequence].map(([sequence, e], j) => {
    const v = `${e.down ? 'least' : 'greatest'}(${e.columns.map((i) => `m."${i}"`).join(', ')})`
    values.push(sequence)
    // numeric: the next value of a sequence at its limit is past int8.
    const past = `${v} ${e.down ? '<=' : '>='} ${e.next}::numeric`
    return `case when ${past} then ${moveStatement(`$${j + 1}::regclass`, sequence, v, e.down)} end as "s${j}"`
  })
  // `offset 0` keeps the subquery whole: flattened, each of its values would be computed
  // again wherever a move names it (a scan or a loose scan of the table two or three times).
  // The moves go in the same statement when this role may read every sequence: a statement
  // that names a sequence needs SELECT on it, whether or not its move runs. Else a second
  // statement moves only the sequences that must move.
  const together = rows.every((r) => r.readable)
  const maxima = (
    await db.query(
      `select ${rows.map((_r, i) => `m."${i}"::text as "${i}"`).join(', ')}` +
        `${together ? `, ${moves.join(', ')}` : ''} from (select ${furthest.join(', ')} offset 0) m`,
      together ? values : [],
    )
  ).rows[0] as Record<string, string | null>
  const out: SequenceAdjustment[] = []
  const furthestOf = new Map<string, bigint>()
  for (const [i, r] of rows.entries()) {
    const m = maxima[String(i)]
    if (m === null || m === undefined) continue
    const { next, down } = bySequence.get(r.seq)!
    if (down ? BigInt(m) > next : BigInt(m) < next) continue
    out.push({ table: r.table, column: r.column, sequence: r.seq, value: m })
    const was = furthestOf.get(r.seq) ?? BigInt(m)
    furthestOf.set(
      r.seq,
      down ? (BigInt(m) < was ? BigInt(m) : was) : BigInt(m) > was ? BigInt(m) : was,
    )
  }
  if (!together) {
    // A move reads where the sequence stands (`last_value`, `is_called`: only SELECT shows
    // whether a restarted sequence has been called); a role that may only use it cannot move
    // it safely, forwards only.
    const unreadable = [...furthestOf.keys()].filter(
      (seq) => !rows.some((r) => r.seq === seq && r.readable),
    )
    if (unreadable.length > 0) {
      throw new MigrationError(
        `The sequence(s) ${unreadable.join(', ')} must move past the copied ids, but this role may not read them. ` +
          `Grant it SELECT (grant select on sequence ${unreadable.join(', ')} to <the role that runs this>) and run again; the rows copied stay.`,
      )
    }
    await setSequences(
      db,
      [...furthestOf].map(([sequence, value]) => ({
        sequence,
        value,
        down: bySequence.get(sequence)!.down,
      })),
    )
  }
  return out
}

/** How {@link moveSequencesOf} finds the furthest values. */
export interface MoveOptions {
  /**
   * Whether to find a table's furthest value by a loose index scan where an index allows
   * (see {@link furthestValue}); every table by default. A small table is scanned faster:
   * the loose scan's recursive query costs a few milliseconds to plan on a new backend.
   */
  readonly looseScan?: (table: string) => boolean
}

/**
 * The largest value of the column in its table (the smallest for a descending sequence).
 * With an index on `(lead, column)`, a loose index scan: one descent per distinct `lead`
 * value (a tenant) to find the next one, one for its furthest value, and one for the rows
 * whose `lead` is null. That index may be gone by now (a deferred index, dropped while the
 * copies ran): the statement checks, and scans the table instead.
 *
 * @example
 * ```ts
 * furthestValue('public', { table: 'book', column: 'id', lead: 'tenant_id', index: '16402', ... })
 * // (case when exists (select from pg_catalog.pg_index i where i.indexrelid = 16402 and i.indisvalid)
 * //   then (with recursive rt_k(v) as ((select rt_s."tenant_id" from "public"."book" rt_s where rt_s."tenant_id" is not null order by 1 limit 1)
 * //          union all select (select rt_s."tenant_id" from "public"."book" rt_s where rt_s."tenant_id" > rt_k.v order by 1 limit 1) from rt_k where rt_k.v is not null)
 * //        select max(m) from (select (select max(rt_s."id") from "public"."book" rt_s where rt_s."tenant_id" = rt_k.v) as m from rt_k where rt_k.v is not null
 * //          union all select (select max(rt_s."id") from "public"."book" rt_s where rt_s."tenant_id" is null)) rt_m)
 * //   else (select max("id") from "public"."book") end)
 * ```
 */
function furthestValue(schema: string, r: SequenceColumn): string {
  const table = quoteQualified(schema, r.table)
  const agg = r.down ? 'min' : 'max'
  const scan = `(select ${agg}(${quoteIdent(r.column)}) from ${table})`
  if (!r.index || !r.lead) return scan
  const lead = `rt_s.${quoteIdent(r.lead)}`
  const column = `rt_s.${quoteIdent(r.column)}`
  const from = `from ${table} rt_s`
  const leads =
    `with recursive rt_k(v) as ((select ${lead} ${from} where ${lead} is not null order by 1 limit 1) ` +
    `union all select (select ${lead} ${from} where ${lead} > rt_k.v order by 1 limit 1) from rt_k where rt_k.v is not null)`
  const perLead = `select (select ${agg}(${column}) ${from} where ${lead} = rt_k.v) as m from rt_k where rt_k.v is not null`
  // The rows whose lead is null, even under NOT NULL (not validated, on PostgreSQL 18, it
  // leaves older rows as they were): one more descent.
  const nulls = ` union all select (select ${agg}(${column}) ${from} where ${lead} is null)`
  const loose = `(${leads} select ${agg}(m) from (${perLead}${nulls}) rt_m)`
  const present = `exists (select from pg_catalog.pg_index i where i.indexrelid = ${BigInt(r.index)} and i.indisvalid)`
  return `(case when ${present} then ${loose} else ${scan} end)`
}

/**
 * `setval` of each sequence to its value, never backwards: not below the value it last
 * gave (a nextval elsewhere since the state was read may be further already), nor below
 * the one it gives next after `RESTART WITH n` / `setval(.., n, false)` (`is_called`
 * false, where `pg_sequence_last_value` is NULL). `sequence` is a quoted, qualified name.
 */
async function setSequences(
  db: Queryable,
  moves: readonly { sequence: string; value: bigint | string; down: boolean }[],
): Promise<void> {
  if (moves.length === 0) return
  await db.query(
    `select ${moves
      .map((m, i) =>
        moveStatement(`$${2 * i + 1}::regclass`, m.sequence, `$${2 * i + 2}::int8`, m.down),
      )
      .join(', ')}`,
    moves.flatMap((m) => [m.sequence, String(m.value)]),
  )
}

/**
 * The `setval` that moves the sequence `seq` (a regclass expression; `sequence` its quoted,
 * qualified name) to `value`, never backwards: not below the value it last gave, nor below
 * the one it gives next when `is_called` is false (descending: not above).
 */
function moveStatement(seq: string, sequence: string, value: string, down: boolean): string {
  const at =
    `(select case when s.is_called then s.last_value else s.last_value - p.seqincrement end ` +
    `from ${sequence} s, pg_catalog.pg_sequence p where p.seqrelid = ${seq})`
  return `setval(${seq}, ${down ? 'least' : 'greatest'}(${value}, ${at}), true)`
}

/**
 * Moves every sequence of the target schema whose values the copied integer columns do not
 * show (one a text column's default draws from, `'INV-' || nextval('bill_no')`, or one only a
 * function calls) above the furthest position of the same-named sequence in the tenant
 * schemas, so the shared sequence never hands out a value a tenant already used. Never
 * backwards; idempotent. Returns the sequences it moved (with the column whose default draws
 * from each, or empty names for a sequence no default names).
 *
 * @example
 * ```ts
 * await followTenantSequences(pool, 'public', ['invoice'], ['tenant_1', 'tenant_2'])
 * // [{ table: 'invoice', column: 'no', sequence: 'public.bill_no', value: '42' }]
 * ```
 */
export async function followTenantSequences(
  db: Queryable,
  schema: string,
  tables: readonly string[],
  tenantSchemas: readonly string[],
): Promise<SequenceAdjustment[]> {
  if (tenantSchemas.length === 0) return []
  const { rows } = await db.query(
    `with drawn as (${COLUMN_SEQUENCES})
     select quote_ident(n.nspname) || '.' || quote_ident(t.relname) as seq,
            coalesce(d.table, '') as table, coalesce(d.column, '') as column,
            (select case when p.seqincrement < 0 then min(pg_sequence_last_value(s.oid)) else max(pg_sequence_last_value(s.oid)) end
               from pg_class s join pg_namespace sn on sn.oid = s.relnamespace
              where s.relkind = 'S' and sn.nspname = any($3::text[]) and s.relname = t.relname)::text as source,
            p.seqincrement < 0 as down,
            coalesce(pg_sequence_last_value(t.oid), p.seqstart - p.seqincrement)::text as last
       from pg_class t join pg_namespace n on n.oid = t.relnamespace join pg_sequence p on p.seqrelid = t.oid
       left join lateral (select x.table, x.column from drawn x where x.seq::regclass = t.oid
                           order by 1, 2 limit 1) d on true
      where n.nspname = $1 and t.relkind = 'S'
        and not exists (select 1 from drawn x where x.integer and x.seq::regclass = t.oid)
        -- only a sequence the tenants have one of, and this role may read
        and exists (select 1 from pg_class s join pg_namespace sn on sn.oid = s.relnamespace
                     where s.relkind = 'S' and sn.nspname = any($3::text[]) and s.relname = t.relname)
        -- (a CASE: the planner may test a condition before relkind, on a table)
        and case when t.relkind = 'S' then pg_catalog.has_sequence_privilege(t.oid, 'SELECT, USAGE') end
      order by 1`,
    [schema, tables, tenantSchemas],
  )
  const further = rows.filter(
    (r) =>
      r.source !== null &&
      (r.down ? BigInt(r.source) < BigInt(r.last) : BigInt(r.source) > BigInt(r.last)),
  )
  await setSequences(
    db,
    further.map((r) => ({ sequence: r.seq, value: r.source, down: r.down })),
  )
  return further.map((r) => ({
    table: r.table,
    column: r.column,
    sequence: r.seq,
    value: r.source,
  }))
}
