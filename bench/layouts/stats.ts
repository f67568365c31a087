/**
 * The median of some numbers (the mean of the middle two for an even count);
 * `NaN` for none.
 *
 * @example
 * ```ts
 * median([3, 1, 2]) // 2
 * median([4, 1, 3, 2]) // 2.5
 * ```
 */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/**
 * The `p`-th percentile (0..100) by the nearest-rank method; `NaN` for none.
 *
 * @example
 * ```ts
 * percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 99) // 10
 * percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 50) // 5
 * ```
 */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!
}

/**
 * `a / b`, or `NaN` when either is missing or `b` is zero.
 *
 * @example
 * ```ts
 * ratio(1, 4) // 0.25
 * ratio(1, 0) // NaN
 * ```
 */
export function ratio(a: number | undefined, b: number | undefined): number {
  if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) {
    return Number.NaN
  }
  return a / b
}

/**
 * Milliseconds `fn` took (wall clock, `performance.now()`), with its result.
 *
 * @example
 * ```ts
 * const { ms } = await timed(() => pool.query('select 1'))
 * ```
 */
export async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const started = performance.now()
  const value = await fn()
  return { ms: performance.now() - started, value }
}
