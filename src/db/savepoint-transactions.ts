import { AsyncLocalStorage } from 'node:async_hooks'
import type { ControlledTransaction, Kysely, Transaction } from 'kysely'

interface OpenTransaction {
  readonly trx: ControlledTransaction<any, string[]>
  readonly next: { n: number }
}

/**
 * The `transaction(fn)` of a tenancy: runs a unit of work in one transaction of
 * the Kysely instance `db` (bound to the current tenant by its dialect).
 * The returned function commits when `fn` resolves and rolls back when it
 * throws (and when the COMMIT itself fails, so that its connection goes back to
 * the pool); called again inside `fn` (same runner) it opens a SAVEPOINT instead,
 * released on success and rolled back to on error, so an inner failure that
 * the outer code catches does not undo the outer work.
 *
 * @example
 * ```ts
 * const transaction = savepointTransactions(db)
 * await runWithTenant(7, () =>
 *   transaction(async (trx) => {
 *     await trx.insertInto('accounts').values({ name: 'a' }).execute()
 *     await transaction(async (inner) => { ... }).catch(() => {}) // a savepoint
 *   }),
 * )
 * ```
 */
export function savepointTransactions<DB>(
  db: Kysely<DB>,
): <T>(fn: (trx: Transaction<DB>) => Promise<T>) => Promise<T> {
  const open = new AsyncLocalStorage<OpenTransaction>()
  return async function transaction<T>(fn: (trx: Transaction<DB>) => Promise<T>): Promise<T> {
    const outer = open.getStore()
    if (outer) {
      const name = `rowtenancy_sp_${++outer.next.n}`
      const sp = (await outer.trx.savepoint(name).execute()) as ControlledTransaction<any, string[]>
      let result: T
      try {
        result = await open.run({ trx: sp, next: outer.next }, () =>
          fn(sp as unknown as Transaction<DB>),
        )
      } catch (err) {
        await sp.rollbackToSavepoint(name).execute()
        throw err
      }
      await sp.releaseSavepoint(name).execute()
      return result
    }
    const trx = await db.startTransaction().execute()
    let result: T
    try {
      result = await open.run(
        { trx: trx as ControlledTransaction<any, string[]>, next: { n: 0 } },
        () => fn(trx),
      )
    } catch (err) {
      await trx.rollback().execute()
      throw err
    }
    try {
      await trx.commit().execute()
    } catch (err) {
      // Kysely keeps the connection of a controlled transaction whose COMMIT failed (a lost
      // connection, a timeout) until it is rolled back: without this, every such failure leaks
      // one pooled client for good. The rollback releases it even when it fails too.
      await trx
        .rollback()
        .execute()
        .catch(() => {})
      throw err
    }
    return result
  }
}
