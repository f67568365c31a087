import { DatabaseUnavailableError } from '../errors/index.js'
import { lockHoldersSql, type TableLockMode } from './lock-holders.js'
import { inTransaction, type Queryable } from './queryable.js'

/**
 * What {@link inTransactionWithLockWait} waits for and how long.
 */
export interface LockWait {
  /** The longest any one statement of the transaction waits for a lock, ms. */
  readonly ms: number
  /** The tables the transaction works on (quoted, qualified), to name who holds them. */
  readonly tables: readonly string[]
  /** The strongest lock the transaction takes on them (whose conflicts are named). */
  readonly mode: TableLockMode
  /**
   * Also the tables whose foreign keys reference `tables`, and theirs in turn: a
   * DELETE waits for their foreign key checks and cascades (`tenants delete`
   * behind a lock on `accounts`).
   */
  readonly referencing?: boolean
  /** The flag that sets `ms`, for the message (`--lock-timeout`). */
  readonly flag?: string
  /**
   * What the failure left and what a rerun does, for the message; by default
   * that nothing was changed (the transaction was rolled back).
   */
  readonly afterwards?: string
}

/**
 * Limits every lock wait of the rest of the caller's transaction to `ms`
 * (`set_config('lock_timeout', ..., true)`: it ends with the transaction).
 *
 * @internal
 */
export async function setLockTimeout(tx: Queryable, ms: number): Promise<void> {
  await tx.query("select pg_catalog.set_config('lock_timeout', $1, true)", [`${ms}ms`])
}

/**
 * Runs `fn` in a transaction (as {@link inTransaction}) whose statements wait
 * at most `wait.ms` for a lock: `lock_timeout` is set with `set_config(...,
 * true)` inside the transaction (never a startup parameter: PgBouncer refuses
 * unknown ones; never for the session: it would outlive the transaction on a
 * pooled server connection). When a wait runs out, the transaction is rolled
 * back (nothing of it stays) and a `DatabaseUnavailableError` (reason
 * `timeout`) names the tables and the sessions that hold them.
 *
 * Give it a pool or a client that is not in a transaction: on a client inside
 * one, {@link inTransaction} makes a savepoint, and the `lock_timeout` set in it
 * would outlive its release, limiting the caller's later statements until the
 * caller's transaction ends (and a timeout would roll back only the savepoint,
 * not the caller's transaction the message says is rolled back).
 *
 * @internal
 * @example
 * ```ts
 * await inTransactionWithLockWait(pool, { ms: 10_000, tables: ['public.tenants'], mode: 'row exclusive' }, (tx) =>
 *   tx.query('update public.tenants set status = $1 where id = $2', ['suspended', 7]),
 * )
 * ```
 */
export async function inTransactionWithLockWait<T>(
  db: Queryable,
  wait: LockWait,
  fn: (tx: Queryable) => Promise<T>,
): Promise<T> {
  try {
    return await inTransaction(db, async (tx) => {
      await setLockTimeout(tx, wait.ms)
      return fn(tx)
    })
  } catch (err) {
    throw (await lockWaitError(db, wait, err)) ?? err
  }
}

/**
 * The `DatabaseUnavailableError` (reason `timeout`) that explains `err` when it
 * is a lock timeout: the tables and the sessions that hold them now (ask after
 * the rollback, when this transaction's own locks are gone); undefined for any
 * other error.
 *
 * @internal
 */
export async function lockWaitError(
  db: Queryable,
  wait: LockWait,
  err: unknown,
): Promise<DatabaseUnavailableError | undefined> {
  const timeout = lockTimeoutOf(err)
  if (timeout === undefined) return undefined
  return new DatabaseUnavailableError('timeout', await lockTimeoutMessage(db, wait, timeout), {
    cause: err,
  })
}

/**
 * The lock timeout (55P03) `err` is, or wraps (an error of ours around the driver's).
 *
 * @internal
 */
export function lockTimeoutOf(err: unknown): Error | undefined {
  for (let e = err, depth = 0; e && depth < 3; e = (e as { cause?: unknown }).cause, depth++) {
    if ((e as { code?: unknown }).code === '55P03') return e as Error
  }
  return undefined
}

async function lockTimeoutMessage(db: Queryable, wait: LockWait, err: Error): Promise<string> {
  let named = wait.tables
  let holders: string | null = null
  let anyLock = false
  try {
    if (wait.referencing) named = [...named, ...(await referencingTables(db, named))]
    holders = await readHolders(db, named, wait.mode)
    if (!holders) {
      // A row lock (an UPDATE or SELECT ... FOR UPDATE not committed) shows as a weaker
      // table lock: name the sessions in a transaction on the tables then.
      holders = await readHolders(db, named, 'access exclusive')
      anyLock = holders !== null
    }
  } catch {
    // the lookup is only for the message: the lock timeout is the error
  }
  const tables = named.length > 0 ? named.join(', ') : 'its tables'
  const who = holders
    ? `, held by ${holders}${anyLock ? ' (sessions with a transaction open on them: one holds the row or lock waited for)' : ''}`
    : ' (no other session holds a lock on them now: it may have ended, or the wait was for another lock, such as an advisory one)'
  return (
    `Gave up waiting for a lock after ${wait.ms} ms on ${tables}${who}: ${err.message}. ` +
    `${wait.afterwards ?? 'Nothing was changed (the transaction was rolled back).'} Retry when that session has ended ` +
    '(see pg_stat_activity and pg_locks; end it with pg_terminate_backend(pid) if it is stuck), ' +
    `or wait longer with ${wait.flag ?? 'a longer lock timeout'}.`
  )
}

async function readHolders(
  db: Queryable,
  tables: readonly string[],
  mode: TableLockMode,
): Promise<string | null> {
  const { rows } = await db.query(`select (${lockHoldersSql('$1::text[]', mode)}) as holders`, [
    tables,
  ])
  return (rows[0]?.holders as string | null) ?? null
}

/**
 * The tables with a foreign key to one of `tables`, and to those in turn (a
 * cascade goes on), other than `tables`: names as `regclass` prints them.
 */
async function referencingTables(db: Queryable, tables: readonly string[]): Promise<string[]> {
  const { rows } = await db.query(
    `with recursive given(relid) as (
       select pg_catalog.to_regclass(t)::oid from pg_catalog.unnest($1::text[]) t),
     refs(relid) as (
       select g.relid from given g where g.relid is not null
       union
       select c.conrelid from pg_catalog.pg_constraint c join refs r on c.confrelid = r.relid
        where c.contype = 'f' and c.conparentid = 0)
     select r.relid::pg_catalog.regclass::text as name from refs r
      where r.relid not in (select g.relid from given g where g.relid is not null)
      order by 1`,
    [tables],
  )
  return rows.map((r) => r.name as string)
}
