import type { Command } from 'commander'
import { DEFAULTS } from '../sql/defaults.js'
import { inTransactionWithLockWait, type LockWait } from '../sql/lock-wait.js'
import type { Queryable } from '../sql/queryable.js'
import { wholeNumberFlag } from './numbers.js'

/**
 * Adds `--lock-timeout <ms>` to a command whose transactions may wait behind
 * another session's lock.
 *
 * @example
 * ```ts
 * withLockTimeoutOption(program.command('init'))
 * ```
 */
export function withLockTimeoutOption(command: Command): Command {
  return command.option(
    '--lock-timeout <ms>',
    `longest wait for a lock another session holds, then roll back and fail (default ${DEFAULTS.lockTimeoutMs})`,
  )
}

/**
 * `--lock-timeout` checked: milliseconds from 1 to 600000; the default when not given.
 *
 * @example
 * ```ts
 * lockTimeoutMs(undefined) // 10000
 * lockTimeoutMs('2500') // 2500
 * ```
 */
export function lockTimeoutMs(raw: string | undefined): number {
  if (raw === undefined) return DEFAULTS.lockTimeoutMs
  return wholeNumberFlag('--lock-timeout', raw, {
    min: 1,
    max: 600_000,
    example: 30_000,
    unit: 'milliseconds',
  })
}

/** The errors that ended an {@link inCommandTransaction} (its transaction rolled back). */
const ROLLED_BACK = new WeakSet<object>()

/**
 * Runs a command's work in one transaction that waits at most `ms` for a lock
 * (`--lock-timeout`), naming the holders of `tables` when it gives up. An error
 * out of it is known to have rolled the transaction back ({@link rolledBack}).
 *
 * @example
 * ```ts
 * await inCommandTransaction(pool, ms, { tables: ['public.tenants'], mode: 'row exclusive' }, (tx) => work(tx))
 * ```
 */
export async function inCommandTransaction<T>(
  db: Queryable,
  ms: number,
  what: Pick<LockWait, 'tables' | 'mode' | 'referencing'>,
  fn: (tx: Queryable) => Promise<T>,
): Promise<T> {
  try {
    return await inTransactionWithLockWait(db, { ...what, ms, flag: '--lock-timeout <ms>' }, fn)
  } catch (err) {
    if (typeof err === 'object' && err !== null) ROLLED_BACK.add(err)
    throw err
  }
}

/**
 * Whether `err` ended a command's one transaction ({@link inCommandTransaction}),
 * so that the failure message may say nothing was changed; a command that
 * commits in steps (`migrate-to-row-tenancy`, `tenants erase`) may not.
 */
export function rolledBack(err: unknown): boolean {
  return typeof err === 'object' && err !== null && ROLLED_BACK.has(err)
}
