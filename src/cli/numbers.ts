import { InvalidInputError } from '../errors/index.js'

/**
 * A whole-number flag value, checked: digits only (no sign, fraction, exponent,
 * spaces or empty string, which `Number()` would read as 0) and within
 * `min`..`max`; else `InvalidInputError` naming the flag, the range and the value
 * as it was typed.
 *
 * @example
 * ```ts
 * wholeNumberFlag('--limit', opts.limit, { min: 1, max: 10_000, example: 5 }) // 5 for '5'
 * wholeNumberFlag('--limit', '', { min: 1, max: 10_000, example: 5 }) // InvalidInputError
 * ```
 */
export function wholeNumberFlag(
  flag: string,
  raw: string,
  range: {
    readonly min: number
    readonly max: number
    readonly example: number
    readonly unit?: string
  },
): number {
  const n = /^\d{1,15}$/.test(raw) ? Number(raw) : Number.NaN
  if (!Number.isSafeInteger(n) || n < range.min || n > range.max) {
    throw new InvalidInputError(
      `${flag} must be ${range.unit ?? 'a whole number'} from ${range.min} to ${range.max} ` +
        `(e.g. ${flag} ${range.example}), not ${JSON.stringify(raw)}.`,
    )
  }
  return n
}
