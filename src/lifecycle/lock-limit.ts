import type pg from 'pg'
import { describeValue } from '../errors/describe-value.js'
import { InvalidInputError } from '../errors/index.js'
import { DEFAULTS } from '../sql/defaults.js'
import { conflictingModes, type TableLockMode } from '../sql/lock-holders.js'
import { lockTimeoutOf, lockWaitError, setLockTimeout } from '../sql/lock-wait.js'
import type { Queryable } from '../sql/queryable.js'
import { quoteQualified } from '../sql/quote.js'
import { PLACEMENTS_TABLE } from '../tenants/placements.js'
import type { LayoutOptions } from './layout.js'
import { MOVE_LEDGER } from './move-ledger.js'

/** The longest `lockTimeoutMs` a lifecycle operation takes, ms (as `--lock-timeout`). */
const MAX_LOCK_TIMEOUT_MS = 600_000

/**
 * Refuses a `lockTimeoutMs` that is not a whole number of milliseconds from 1
 * to 600000 (undefined: no limit), before anything runs.
 *
 * @internal
 */
export function checkLockTimeout(operation: string, value: unknown): number | undefined {
  if (value === undefined) return undefined
  if (
    typeof value !== 'number' ||
    !Number.isInteger(value) ||
    value < 1 ||
    value > MAX_LOCK_TIMEOUT_MS
  ) {
    throw new InvalidInputError(
      `${operation}: \`lockTimeoutMs\` must be milliseconds from 1 to ${MAX_LOCK_TIMEOUT_MS} (e.g. 10000), ` +
        `got ${describeValue(value)}. Nothing was changed.`,
    )
  }
  return value
}

/**
 * Limits the lock waits of the rest of the caller's transaction to `ms`
 * (nothing when undefined: wait as long as it takes).
 *
 * @internal
 */
export async function limitLockWaits(tx: Queryable, ms: number | undefined): Promise<void> {
  if (ms !== undefined) await setLockTimeout(tx, ms)
}

/** One database a lifecycle operation works in, and where its tables are. */
export interface LockPlace {
  readonly db: pg.Pool
  readonly layout: LayoutOptions
}

/** The database each lock timeout ran out in, noted where its transaction ran. */
const waitedIn = new WeakMap<object, Queryable>()

/**
 * Notes that `err`, when it is a lock timeout, ran out in a transaction on `db`
 * (so the message names the holders there, not a session elsewhere that merely
 * holds a lock on the same tables).
 *
 * @internal
 */
export function tagLockWait(err: unknown, db: Queryable): void {
  if (err !== null && typeof err === 'object' && lockTimeoutOf(err) !== undefined) {
    if (!waitedIn.has(err)) waitedIn.set(err, db)
  }
}

/** The database `err` (or an error it wraps) was tagged with by {@link tagLockWait}. */
function taggedDb(err: unknown): Queryable | undefined {
  for (let e = err, depth = 0; e && typeof e === 'object' && depth < 4; depth++) {
    const db = waitedIn.get(e)
    if (db !== undefined) return db
    e = (e as { cause?: unknown }).cause
  }
  return undefined
}

/**
 * The `DatabaseUnavailableError` (reason `timeout`) for `err` when it is a lock
 * timeout (undefined otherwise): it names the tables of the operation and the
 * sessions that hold them in the database the wait ran out in (tagged with
 * {@link tagLockWait}; untagged: the first of `places` where another session
 * holds a lock that conflicts with `how.mode`, else any lock), then says what
 * the failure left and what a rerun does (`afterwards`).
 *
 * @internal
 */
export async function lifecycleLockWaitError(
  err: unknown,
  places: readonly LockPlace[],
  how: { ms: number; mode: TableLockMode; afterwards: string },
): Promise<Error | undefined> {
  if (lockTimeoutOf(err) === undefined) return undefined
  const tagged = taggedDb(err)
  const at = places.find((p) => p.db === tagged)
  let place = at ?? places[0]!
  let tables: string[] = []
  const candidates = at
    ? [[at, null] as const]
    : [
        ...places.map((p) => [p, conflictingModes(how.mode)] as const),
        ...places.map((p) => [p, null] as const),
      ]
  for (const [p, modes] of candidates) {
    const locked = await lockedTables(p.db, p.layout, modes).catch(() => [])
    if (locked.length > 0) {
      place = p
      tables = locked
      break
    }
  }
  const found = tables.length > 0
  if (!found) {
    const ts = place.layout.tenantsSchema ?? place.layout.schema ?? DEFAULTS.schema
    tables = [quoteQualified(ts, 'tenants'), quoteQualified(ts, 'tenant_domains')]
  }
  // An operation on several databases says which one the wait was in.
  const where =
    (found || at) && places.length > 1
      ? await place.db
          .query('select pg_catalog.current_database() as d')
          .then((r) => `The wait was in the database ${JSON.stringify(r.rows[0].d)}. `)
          .catch(() => '')
      : ''
  return lockWaitError(
    place.db,
    { ...how, tables, flag: '`lockTimeoutMs`', afterwards: where + how.afterwards },
    err,
  )
}

/**
 * Runs `fn` (whose transactions wait at most `ms` for a lock); a lock timeout
 * out of it becomes {@link lifecycleLockWaitError}'s error, explained after
 * `fn` has given its connections back.
 *
 * @internal
 */
export async function explainLockWaits<T>(
  places: readonly LockPlace[],
  ms: number | undefined,
  afterwards: string | (() => string),
  fn: () => Promise<T>,
  mode: TableLockMode = 'row exclusive',
): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    if (ms === undefined) throw err
    // An operation on one database waited there (a move that calls it knows where).
    if (places.length === 1) tagLockWait(err, places[0]!.db)
    const text = typeof afterwards === 'string' ? afterwards : afterwards()
    throw (await lifecycleLockWaitError(err, places, { ms, mode, afterwards: text })) ?? err
  }
}

/**
 * The tables of the operation in `db` (`tenants`, `tenant_domains`, the move
 * ledger, the placement map, the audit log, and every table with the tenant
 * column, a partition as its parent) that a session other than ours holds a
 * lock on (one of `modes`, or any when null). From `pg_locks` and the catalog alone: introspecting a table would
 * wait behind an access exclusive lock on it.
 */
async function lockedTables(
  db: Queryable,
  options: LayoutOptions,
  modes: readonly string[] | null,
): Promise<string[]> {
  const schema = options.schema ?? DEFAULTS.schema
  const tenantsSchema = options.tenantsSchema ?? schema
  const { rows } = await db.query(
    `select distinct n.nspname as schema, c.relname as name
       from pg_catalog.pg_locks l
       join pg_catalog.pg_class r on r.oid = l.relation
       left join pg_catalog.pg_inherits i on i.inhrelid = r.oid
       join pg_catalog.pg_class c on c.oid = coalesce(i.inhparent, r.oid)
       join pg_catalog.pg_namespace n on n.oid = c.relnamespace
      where l.locktype = 'relation' and l.pid <> pg_catalog.pg_backend_pid()
        and l.database = (select d.oid from pg_catalog.pg_database d
                           where d.datname = pg_catalog.current_database())
        and c.relkind in ('r', 'p')
        and l.granted and ($5::text[] is null or l.mode = any ($5::text[]))
        and ((n.nspname = $1 and c.relname = any ($2::text[]))
             or (n.nspname = $3 and exists (select 1 from pg_catalog.pg_attribute a
                                              where a.attrelid = c.oid and a.attname = $4
                                                and a.attnum > 0 and not a.attisdropped)))
      order by 1, 2`,
    [
      tenantsSchema,
      ['tenants', 'tenant_domains', MOVE_LEDGER, PLACEMENTS_TABLE, 'audit_log'],
      schema,
      options.tenantColumn ?? DEFAULTS.tenantColumn,
      modes,
    ],
  )
  return rows.map((r) => quoteQualified(r.schema as string, r.name as string))
}
