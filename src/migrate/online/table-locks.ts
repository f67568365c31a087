import { MigrationError } from '../../errors/index.js'
import { lockHoldersSql, type TableLockMode } from '../../sql/lock-holders.js'
import type { Queryable } from '../../sql/queryable.js'
import { quoteLiteral } from '../../sql/quote.js'

/**
 * The longest one attempt of {@link lockTables} waits for all its locks, ms (or
 * half the server's `deadlock_timeout`, when that is less): the app's
 * transactions queue behind a waiting lock request for no longer than this, and
 * an app transaction caught in a cycle with the attempt never reaches its own
 * deadlock check while the attempt still waits.
 */
export const LOCK_WAIT_MS = 250
/** Attempts of {@link withLockRetry} before it gives up. */
export const LOCK_ATTEMPTS = 8
/** Backoff before attempt n + 1: `LOCK_BACKOFF_MS * 2^(n-1)`, at most `LOCK_BACKOFF_MAX_MS`, with jitter. */
const LOCK_BACKOFF_MS = 100
const LOCK_BACKOFF_MAX_MS = 2_000

/** The table lock modes the online migration takes. */
export type { TableLockMode }

/**
 * The tables were busy: one attempt of {@link lockTables} ran out of its wait,
 * or a deadlock check picked the installer. The transaction must be rolled back
 * (which releases what it holds) and tried again; {@link withLockRetry} does.
 *
 * @internal
 */
export class TablesBusyError extends MigrationError {}

/**
 * The tables changed while they were being locked (a table was created
 * meanwhile): nothing holds them, the step looks again after a rollback.
 *
 * @internal
 */
export class TablesChangedError extends TablesBusyError {}

/**
 * Takes `mode` locks on `tables` (quoted, qualified names; a partitioned table's
 * partitions come with it), one `LOCK TABLE` per table in name order, all in one
 * DO block (one round trip) at the start of the caller's transaction, so that
 * its DDL afterwards waits on nothing. The whole block waits at most
 * {@link LOCK_WAIT_MS} (less on a server with a short `deadlock_timeout`): each
 * `LOCK TABLE` gets what is left of that. The transaction's own
 * `deadlock_timeout` is lowered where the role may (a superuser, or `GRANT SET
 * ON PARAMETER`), so the installer, not an app transaction, is the one a
 * deadlock check aborts, and a blocking autovacuum is cancelled early.
 * `lock_timeout` is left as it was. Throws {@link TablesBusyError} on a lock
 * timeout (its message names the sessions that held the table) or a deadlock.
 *
 * @internal
 */
export async function lockTables(
  db: Queryable,
  tables: readonly string[],
  mode: TableLockMode,
): Promise<void> {
  const names = [...new Set(tables)].sort()
  if (names.length === 0) return
  const locks = names
    .map(
      (t) =>
        `    v_table := ${quoteLiteral(t)};\n` +
        `    perform pg_catalog.set_config('lock_timeout', greatest(1, ceil(extract(epoch from v_until - pg_catalog.clock_timestamp()) * 1000))::int || 'ms', true);\n` +
        `    lock table ${t} in ${mode} mode;`,
    )
    .join('\n')
  // On a lock timeout, the sessions holding the table are read before the error
  // aborts the transaction, and named in it.
  const body = `
declare
  v_before text := pg_catalog.current_setting('lock_timeout');
  v_wait int := least(${LOCK_WAIT_MS}, greatest(2, (select s.setting::int / 2 from pg_catalog.pg_settings s where s.name = 'deadlock_timeout')));
  v_until timestamptz := pg_catalog.clock_timestamp() + pg_catalog.make_interval(secs => v_wait / 1000.0);
  v_table text;
  v_holders text;
begin
  begin
    perform pg_catalog.set_config('deadlock_timeout', greatest(1, v_wait / 5) || 'ms', true);
  exception when insufficient_privilege then null;
  end;
  begin
${locks}
  exception when lock_not_available then
    v_holders := (${lockHoldersSql('array[v_table]', mode)});
    raise exception using errcode = 'lock_not_available',
      message = 'canceling statement due to lock timeout on ' || v_table
        || coalesce('; held by ' || v_holders, '');
  end;
  perform pg_catalog.set_config('lock_timeout', v_before, true);
end
`
  let tag = '$rt$'
  for (let i = 1; body.includes(tag); i++) tag = `$rt${i}$`
  try {
    await db.query(`do ${tag}${body}${tag}`)
  } catch (err) {
    if (!isBusy(err)) throw err
    const detail = (err as { detail?: string }).detail
    throw new TablesBusyError(
      `${names.length === 1 ? names[0] : `${names.length} tables (${names.slice(0, 3).join(', ')}${names.length > 3 ? ', ...' : ''})`} ` +
        `not locked in ${mode} mode: ${(err as Error).message}${detail ? ` (${detail})` : ''}`,
      { cause: err },
    )
  }
}

/** A lock timeout (55P03) or a deadlock (40P01), or {@link TablesBusyError}. @internal */
export function isBusy(err: unknown): boolean {
  if (err instanceof TablesBusyError) return true
  const code = (err as { code?: unknown } | undefined)?.code
  return code === '55P03' || code === '40P01'
}

/**
 * Runs `attempt` (which opens and ends its own transaction, rolling it back on
 * error) until it succeeds; on {@link isBusy} (its tables were busy; the
 * rollback released everything) it waits a backoff and tries again, at most
 * {@link LOCK_ATTEMPTS} times, then throws a MigrationError that says what to do.
 * `what` names the tables for that message ("the legacy tables of schema x").
 *
 * @internal
 */
export async function withLockRetry<T>(
  what: string,
  attempt: () => Promise<T>,
  options: { busy?: (err: unknown) => boolean; rerun?: string } = {},
): Promise<T> {
  const busy = options.busy ?? isBusy
  for (let n = 1; ; n++) {
    try {
      return await attempt()
    } catch (err) {
      if (!busy(err)) throw err
      if (n >= LOCK_ATTEMPTS) throw lockGaveUp(what, n, err, options.rerun)
      await lockBackoff(n)
    }
  }
}

/** Waits the backoff after failed attempt `n` (1-based). @internal */
export function lockBackoff(n: number): Promise<void> {
  const base = Math.min(LOCK_BACKOFF_MAX_MS, LOCK_BACKOFF_MS * 2 ** (n - 1))
  const ms = base / 2 + Math.random() * (base / 2)
  return new Promise((res) => setTimeout(res, ms))
}

/**
 * The error after the last attempt: what held the tables up, what to do.
 * `rerun` replaces the closing "nothing of this step was changed; rerun" (a step
 * over several schemas says which are done already).
 *
 * @internal
 */
export function lockGaveUp(
  what: string,
  attempts: number,
  err: unknown,
  rerun = 'Nothing of this step was changed; rerun when it has ended.',
): MigrationError {
  const why = (err as Error)?.message ?? String(err)
  if (err instanceof TablesChangedError) {
    return new MigrationError(
      `Could not lock ${what} in ${attempts} attempts: ${why}. Tables of the schema kept being created ` +
        `(or attached) while they were being locked. ${rerun.replace(' when it has ended', ' when that has stopped')}`,
      { cause: err },
    )
  }
  return new MigrationError(
    `Could not lock ${what} in ${attempts} attempts (each waits at most ${LOCK_WAIT_MS} ms, so that the ` +
      `app's requests never wait long behind it or deadlock with it): ${why}. ` +
      'Another session holds them: a long transaction, a VACUUM, a pg_dump, a request that keeps its ' +
      `transaction open (see pg_stat_activity and pg_locks). ${rerun}`,
    { cause: err },
  )
}
