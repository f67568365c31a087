/**
 * The least a database handle must offer: `query(text, values)`. A `pg.Pool`,
 * `pg.Client` and `pg.PoolClient` all fit.
 *
 * @example
 * ```ts
 * const db: Queryable = new pg.Pool({ connectionString })
 * ```
 */
export interface Queryable {
  query(text: string, values?: unknown[]): Promise<{ rows: any[]; rowCount: number | null }>
}

/**
 * A handle that can also hand out a dedicated connection (a `pg.Pool`).
 *
 * @example
 * ```ts
 * const pool: ConnectableQueryable = new pg.Pool()
 * ```
 */
export interface ConnectableQueryable extends Queryable {
  connect(): Promise<Queryable & { release(err?: boolean | Error): void }>
}

/**
 * Whether `db` is a `pg.Pool`: reads sent at once then run at once, each on a
 * connection of its own (on a single connection they would only queue).
 *
 * @example
 * ```ts
 * isPool(new pg.Pool()) // true; a pg.Client or a checked-out pg.PoolClient: false
 * ```
 */
export function isPool(db: Queryable): boolean {
  return typeof (db as { totalCount?: unknown }).totalCount === 'number'
}

/** Marks a handle other than a pool whose independent reads {@link readAll} sends at once. */
const READS_AT_ONCE: unique symbol = Symbol('rowtenancy.readsAtOnce')

/** Whether {@link readAll} sends `db` its reads at once: a pool, or {@link sharedConnections}. */
function readsAtOnce(db: Queryable): boolean {
  return isPool(db) || (db as { [READS_AT_ONCE]?: boolean })[READS_AT_ONCE] === true
}

/**
 * Runs independent reads: all at once on a pool, one after the other on a single
 * connection (a `pg.Client` queues them anyway; this keeps their order plain). On a
 * pool it waits for every read, then throws the failure of the first in the list that
 * failed: the error does not depend on which read finished first.
 *
 * @example
 * ```ts
 * const [columns, keys] = await readAll(db, [() => readColumns(db), () => readKeys(db)])
 * ```
 */
export async function readAll<T extends readonly unknown[]>(
  db: Queryable,
  reads: { [K in keyof T]: () => Promise<T[K]> },
): Promise<T> {
  if (readsAtOnce(db)) {
    const settled = await Promise.allSettled(reads.map((r) => r()))
    for (const r of settled) if (r.status === 'rejected') throw r.reason
    return settled.map((r) => (r as PromiseFulfilledResult<unknown>).value) as unknown as T
  }
  const out: unknown[] = []
  for (const read of reads) out.push(await read())
  return out as unknown as T
}

/**
 * Connections already checked out, as one handle for independent reads: each query goes to
 * an idle one (the first given when several are), and {@link readAll} sends its reads at
 * once. `later` joins when it resolves (to nothing: it never does). A connection whose query
 * failed takes no more while another is left. Not for a transaction: two queries may go to
 * two connections. The caller keeps the connections and releases them once the reads are
 * done.
 *
 * @example
 * ```ts
 * const db = sharedConnections(client, otherClientWhenFree)
 * const [columns, keys] = await readAll(db, [() => readColumns(db), () => readKeys(db)])
 * ```
 */
export function sharedConnections(
  first: Queryable,
  later: Promise<Queryable | undefined>,
): Queryable & { readonly connections: number } {
  const all = [first]
  const idle = [first]
  const waiting: ((c: Queryable) => void)[] = []
  const give = (c: Queryable) => {
    const next = waiting.shift()
    if (next) return next(c)
    idle.push(c)
    idle.sort((a, b) => all.indexOf(a) - all.indexOf(b))
  }
  later.then(
    (c) => {
      if (!c) return
      all.push(c)
      give(c)
    },
    () => {},
  )
  const take = () =>
    idle.length > 0
      ? Promise.resolve(idle.shift()!)
      : new Promise<Queryable>((resolve) => waiting.push(resolve))
  const shared = {
    [READS_AT_ONCE]: true as const,
    /** How many connections take reads now. */
    get connections() {
      return all.length
    },
    async query(text: string, values?: unknown[]) {
      const c = await take()
      try {
        const result = await c.query(text, values)
        give(c)
        return result
      } catch (err) {
        // A connection whose read failed may be in a failed transaction: the other reads go
        // to the others, so each reports its own outcome, not that one's.
        if (all.length > 1) all.splice(all.indexOf(c), 1)
        else give(c)
        throw err
      }
    },
  }
  return shared
}

/**
 * Runs `fn` in a transaction on one connection (checked out from a pool when
 * `db` is one), committing on success and rolling back on any error.
 *
 * @example
 * ```ts
 * await inTransaction(pool, async (tx) => {
 *   await tx.query('insert into tenants (slug, name) values ($1, $2)', ['acme', 'Acme'])
 * })
 * ```
 */
export async function inTransaction<T>(
  db: Queryable,
  fn: (tx: Queryable) => Promise<T>,
): Promise<T> {
  return onOneConnection(db, async (client) => {
    // On a connection the caller already has in a transaction, a savepoint: the caller's
    // transaction is neither committed nor rolled back here.
    const nested = client === db ? await inTransactionBlock(client) : false
    await client.query(nested ? `savepoint ${SAVEPOINT}` : 'begin')
    try {
      const result = await fn(client)
      await client.query(nested ? `release savepoint ${SAVEPOINT}` : 'commit')
      return result
    } catch (err) {
      await client
        .query(
          nested
            ? `rollback to savepoint ${SAVEPOINT}; release savepoint ${SAVEPOINT}`
            : 'rollback',
        )
        .catch(() => {})
      throw err
    }
  })
}

const SAVEPOINT = 'rowtenancy_tx'

/**
 * Whether `client` is inside a transaction block: a savepoint succeeds only there (and is
 * released at once); outside one it fails with 25P01 and changes nothing.
 */
async function inTransactionBlock(client: Queryable): Promise<boolean> {
  try {
    await client.query(`savepoint ${SAVEPOINT}; release savepoint ${SAVEPOINT}`)
    return true
  } catch (err) {
    if ((err as { code?: string }).code === '25P01') return false
    throw err
  }
}

/**
 * Runs `fn` on one connection: checked out from `db` when it is a pool (released after,
 * discarded when it broke), else `db` itself. For work that spans several statements of
 * one session, such as a transaction opened by a multi-statement query.
 *
 * @example
 * ```ts
 * await onOneConnection(pool, (c) => c.query('begin; select 1; commit'))
 * ```
 */
export async function onOneConnection<T>(
  db: Queryable,
  fn: (client: Queryable) => Promise<T>,
): Promise<T> {
  // A pool hands out connections; a client (pg.Client, a pool's client) has a `connect` of its
  // own, and a process id, and is the connection already.
  const pooled =
    typeof (db as Partial<ConnectableQueryable>).connect === 'function' &&
    !('processID' in db) &&
    typeof (db as { release?: unknown }).release !== 'function'
  if (!pooled) return fn(db)
  const client = await (db as ConnectableQueryable).connect()
  let failed: unknown
  try {
    return await fn(client)
  } catch (err) {
    failed = err
    throw err
  } finally {
    client.release(failed instanceof Error && isConnectionError(failed) ? failed : undefined)
  }
}

/**
 * Whether an error means the connection itself broke (no SQLSTATE, class 08,
 * or `admin_shutdown`), so the client must be discarded, not reused.
 *
 * @internal
 * @example
 * ```ts
 * isConnectionError(Object.assign(new Error('terminating connection'), { code: '57P01' })) // true
 * ```
 */
export function isConnectionError(err: Error): boolean {
  const code = (err as { code?: string }).code
  return code === undefined || code.startsWith('08') || code === '57P01'
}

/**
 * Runs `text` and returns its rows typed as `R`: the one place a catalog or
 * ledger read states the shape of the rows it expects.
 */
export async function selectRows<R>(db: Queryable, text: string, values?: unknown[]): Promise<R[]> {
  return (await db.query(text, values)).rows as R[]
}

/** Groups rows by a key, keeping their order within each group. */
export function groupBy<T>(rows: readonly T[], key: (row: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>()
  for (const row of rows) {
    const k = key(row)
    const list = out.get(k)
    if (list) list.push(row)
    else out.set(k, [row])
  }
  return out
}
