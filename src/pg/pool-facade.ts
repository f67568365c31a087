import pg from 'pg'
import { refuseQuery, releasedClientError } from '../db/released-client.js'
import { resolveTimeouts } from '../db/unavailable.js'
import { acquire, DEFAULT_ACQUIRE_MS } from '../sql/acquire.js'

/** A pg callback: `(err, result)`. @internal */
export type QueryCallback = (err: Error | null, result?: pg.QueryResult) => void

/**
 * One call of `query(...)` in any of pg's shapes, taken apart.
 *
 * @internal
 */
export interface QueryCall {
  /** The text, values and pg options of the statement. */
  readonly config: pg.QueryConfig & { rowMode?: 'array'; types?: unknown }
  readonly callback: QueryCallback | undefined
}

/**
 * Takes pg's `query(text | config, values?, callback?)` arguments apart.
 * Returns `undefined` for a Submittable (a cursor or stream object).
 *
 * @internal
 */
export function parseQueryCall(args: readonly unknown[]): QueryCall | undefined {
  const [first, second, third] = args
  if (
    first !== null &&
    typeof first === 'object' &&
    typeof (first as pg.Submittable).submit === 'function'
  ) {
    return undefined
  }
  let callback: QueryCallback | undefined
  let values: unknown[] | undefined
  if (typeof second === 'function') callback = second as QueryCallback
  else {
    values = second as unknown[] | undefined
    if (typeof third === 'function') callback = third as QueryCallback
  }
  if (typeof first === 'string') return { config: { text: first, values }, callback }
  if (
    first === null ||
    typeof first !== 'object' ||
    typeof (first as pg.QueryConfig).text !== 'string'
  ) {
    throw new TypeError('query() needs SQL text or a { text, values } config object.')
  }
  let config = first as pg.QueryConfig & { callback?: QueryCallback }
  if (config.callback !== undefined) {
    callback ??= config.callback
    const { callback: _, ...rest } = config
    config = rest
  }
  return { config: values === undefined ? config : { ...config, values }, callback }
}

/**
 * Settles a pg-style call: with a callback, calls it and returns `undefined`;
 * without one, returns the promise.
 *
 * @internal
 */
export function settle(
  promise: Promise<pg.QueryResult>,
  callback: QueryCallback | undefined,
): Promise<pg.QueryResult> | undefined {
  if (!callback) return promise
  promise.then(
    (result) => callback(null, result),
    (err: Error) => callback(err),
  )
  return undefined
}

const FORWARDED = new Set(['connect', 'acquire', 'release', 'remove', 'error'])

/**
 * Wraps every client a facade hands out: `query` and `release` are the
 * facade's, everything else (events, escapeIdentifier, processID ...) is the
 * client's own.
 *
 * @internal
 */
export interface ClientHooks {
  query(args: readonly unknown[]): unknown
  release(destroy: boolean | Error | undefined): void
}

/**
 * A `pg.Pool` (so `instanceof pg.Pool` holds, as Prisma's adapter and others
 * check) that is a front for another pool: connections come from `inner`, the
 * counts and events are `inner`'s, `end()` ends `inner` when the facade owns it. Subclasses decide what
 * `query` does, on the pool and on each checked-out client.
 *
 * @internal
 */
export abstract class PoolFacade extends pg.Pool {
  readonly #inner: pg.Pool
  readonly #endInner: boolean
  readonly #acquireMs: number

  /**
   * `endInner`: whether `end()` ends `inner` too (false: the facade shares a pool it does not own).
   * `acquireMs`: how long a checkout may wait for a connection (0: no limit).
   */
  constructor(inner: pg.Pool, endInner: boolean, acquireMs = DEFAULT_ACQUIRE_MS) {
    super({ ...(inner as unknown as { options: pg.PoolConfig }).options })
    this.#inner = inner
    this.#endInner = endInner
    this.#acquireMs = resolveTimeouts({ acquireMs }, 'acquireMs').acquireMs
    // Events are forwarded from the inner pool while someone listens here (no listeners
    // pile up on a shared pool for facades nobody listens to).
    const forwarders = new Map<string, (...args: unknown[]) => void>()
    const events = this as unknown as NodeJS.EventEmitter
    events.on('newListener', (event: string | symbol) => {
      if (typeof event !== 'string' || !FORWARDED.has(event) || forwarders.has(event)) return
      const forward = (...args: unknown[]) => this.emit(event, ...args)
      forwarders.set(event, forward)
      inner.on(event as 'error', forward)
    })
    events.on('removeListener', (event: string | symbol) => {
      if (typeof event !== 'string' || this.listenerCount(event) > 0) return
      const forward = forwarders.get(event)
      if (!forward) return
      forwarders.delete(event)
      inner.removeListener(event, forward)
    })
  }

  /** The pool the connections come from. */
  get inner(): pg.Pool {
    return this.#inner
  }

  /** The client of one checkout, as the facade hands it out. */
  protected abstract hooks(client: pg.PoolClient): ClientHooks

  override connect(): Promise<pg.PoolClient>
  override connect(
    callback: (
      err: Error | undefined,
      client: pg.PoolClient | undefined,
      done: (release?: unknown) => void,
    ) => void,
  ): void
  override connect(
    callback?: (
      err: Error | undefined,
      client: pg.PoolClient | undefined,
      done: (release?: unknown) => void,
    ) => void,
  ): Promise<pg.PoolClient> | undefined {
    const promise = this.checkout()
    if (!callback) return promise
    promise.then(
      (client) => callback(undefined, client, (release) => client.release(release as boolean)),
      (err: Error) => callback(err, undefined, () => {}),
    )
    return undefined
  }

  /** A client of `inner`, wrapped by {@link hooks}. */
  protected checkout(): Promise<pg.PoolClient> {
    return this.acquireClient().then((client) => wrapClient(client, this.hooks(client)))
  }

  /**
   * A client of `inner`, waiting at most `acquireMs`: a full pool fails with
   * `DatabaseUnavailableError` (`pool-timeout`), a server that cannot be reached
   * with `DatabaseUnreachableError`.
   */
  protected acquireClient(): Promise<pg.PoolClient> {
    return acquire(this.#inner, this.#acquireMs)
  }

  override end(): Promise<void>
  override end(callback: () => void): void
  override end(callback?: () => void): Promise<void> | void {
    const self = this as { ending: boolean; ended: boolean }
    self.ending = true
    const done = (this.#endInner ? this.#inner.end() : Promise.resolve()).then(() => {
      self.ended = true
    })
    if (!callback) return done
    done.then(callback, callback)
  }
}

// pg-pool's counts are getters (typed as properties): the facade's read the inner pool.
for (const name of ['totalCount', 'idleCount', 'waitingCount', 'expiredCount'] as const) {
  Object.defineProperty(PoolFacade.prototype, name, {
    get(this: PoolFacade) {
      return this.inner[name]
    },
    configurable: true,
  })
}

/**
 * The proxy handler of one checkout: `query` and `release` are the hooks' (a query
 * after the release is refused, a second release does nothing), every other property is
 * the client's own. A class, so a checkout allocates the
 * handler and the two functions, and nothing else.
 */
class ClientView implements ProxyHandler<pg.PoolClient> {
  readonly query: (...args: unknown[]) => unknown
  readonly release: (destroy?: boolean | Error) => void
  /** Released: a reference kept past the checkout runs nothing on the pooled client. */
  #released = false

  constructor(hooks: ClientHooks) {
    this.query = (...args: unknown[]) =>
      this.#released
        ? refuseQuery(args, releasedClientError('when its checkout ended'))
        : hooks.query(args)
    this.release = (destroy?: boolean | Error) => {
      if (this.#released) return
      this.#released = true
      hooks.release(destroy)
    }
  }

  get(target: pg.PoolClient, prop: string | symbol, receiver: unknown): unknown {
    if (prop === 'query') return this.query
    if (prop === 'release') return this.release
    // Released: nothing of the pooled client (pg's own query called on this view, its
    // connection) is handed out any more.
    if (this.#released && typeof prop === 'string')
      throw releasedClientError('when its checkout ended')
    return Reflect.get(target, prop, receiver)
  }
}

function wrapClient(client: pg.PoolClient, hooks: ClientHooks): pg.PoolClient {
  return new Proxy(client, new ClientView(hooks))
}
