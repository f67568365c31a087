/** An entry of {@link LruCache}, in its recency list (`newer` toward the most recently used). */
interface Entry<V> {
  readonly key: string
  value: V
  expires: number
  older: Entry<V> | undefined
  newer: Entry<V> | undefined
}

/**
 * A size-bounded map with expiry: the least recently used entry goes first when
 * it is full, and an expired entry is dropped when it is next asked for. A `Map`
 * finds the entry and a linked list keeps the order, so a hit (on a hot path:
 * `TenantStore.peek` runs per job) moves its entry to the front by relinking it,
 * without the `Map` delete and insert that keeping the order in the `Map` costs.
 *
 * @internal
 */
export class LruCache<V> {
  readonly #max: number
  readonly #entries = new Map<string, Entry<V>>()
  /** The least and the most recently used entries. */
  #oldest: Entry<V> | undefined
  #newest: Entry<V> | undefined

  constructor(max: number) {
    this.#max = max
  }

  get size(): number {
    return this.#entries.size
  }

  /** The live value of `key`, or `undefined` (an expired entry is dropped). */
  get(key: string, now: number): V | undefined {
    const entry = this.#entries.get(key)
    if (entry === undefined) return undefined
    if (entry.expires <= now) {
      this.#remove(entry)
      return undefined
    }
    if (entry !== this.#newest) {
      this.#unlink(entry)
      this.#link(entry)
    }
    return entry.value
  }

  set(key: string, value: V, expires: number): void {
    if (this.#max <= 0) return
    const found = this.#entries.get(key)
    if (found !== undefined) this.#remove(found)
    while (this.#entries.size >= this.#max) this.#remove(this.#oldest!)
    const entry: Entry<V> = { key, value, expires, older: undefined, newer: undefined }
    this.#entries.set(key, entry)
    this.#link(entry)
  }

  delete(key: string): void {
    const entry = this.#entries.get(key)
    if (entry !== undefined) this.#remove(entry)
  }

  clear(): void {
    this.#entries.clear()
    this.#oldest = this.#newest = undefined
  }

  #remove(entry: Entry<V>): void {
    this.#entries.delete(entry.key)
    this.#unlink(entry)
  }

  /** Takes `entry` out of the recency list. */
  #unlink(entry: Entry<V>): void {
    if (entry.older === undefined) this.#oldest = entry.newer
    else entry.older.newer = entry.newer
    if (entry.newer === undefined) this.#newest = entry.older
    else entry.newer.older = entry.older
    entry.older = entry.newer = undefined
  }

  /** Puts `entry` at the most recently used end of the list. */
  #link(entry: Entry<V>): void {
    entry.older = this.#newest
    if (this.#newest === undefined) this.#oldest = entry
    else this.#newest.newer = entry
    this.#newest = entry
  }
}

/**
 * Lookups by tenant id cached for `ttlMs` (0: no cache), at most `max` ids (the
 * least recently used goes first); a failed lookup is forgotten at once.
 *
 * @internal
 */
export class LookupCache<V> {
  readonly #ttl: number
  readonly #entries: LruCache<Promise<V>>

  constructor(ttlMs: number, max = 10_000) {
    this.#ttl = ttlMs
    this.#entries = new LruCache(max)
  }

  /** The cached value of `id`, else `load(id)` (cached when `ttlMs` > 0). */
  get(id: string, load: (id: string) => Promise<V>): Promise<V> {
    const now = Date.now()
    const hit = this.#entries.get(id, now)
    if (hit !== undefined) return hit
    const value = load(id)
    if (this.#ttl > 0) {
      this.#entries.set(id, value, now + this.#ttl)
      value.catch(() => this.#entries.delete(id))
    }
    return value
  }

  /** Forgets one id, or all of them. */
  forget(id?: string): void {
    if (id === undefined) this.#entries.clear()
    else this.#entries.delete(id)
  }
}
