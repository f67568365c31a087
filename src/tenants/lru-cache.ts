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

  clear(): void {
    this.#entries.clear()
  }
}
