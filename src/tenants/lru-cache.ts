/**
 * A size-bounded map with expiry: the least recently used entry goes first when
 * it is full, and an expired entry is dropped when it is next asked for. Built on
 * `Map` insertion order (a hit moves the entry to the end).
 *
 * @internal
 */
export class LruCache<V> {
  readonly #max: number
  readonly #entries = new Map<string, { readonly value: V; readonly expires: number }>()

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
    this.#entries.delete(key)
    if (entry.expires <= now) return undefined
    this.#entries.set(key, entry)
    return entry.value
  }

  set(key: string, value: V, expires: number): void {
    if (this.#max <= 0) return
    this.#entries.delete(key)
    while (this.#entries.size >= this.#max) {
      const oldest = this.#entries.keys().next().value as string
      this.#entries.delete(oldest)
    }
    this.#entries.set(key, { value, expires })
  }

  delete(key: string): void {
    this.#entries.delete(key)
  }

  clear(): void {
    this.#entries.clear()
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
