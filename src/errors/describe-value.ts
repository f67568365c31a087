/**
 * A short, safe rendering of a bad value for an error message (strings quoted
 * and cut at 60 characters, bigints with `n`, objects by kind only).
 *
 * @internal
 */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') {
    const shown = value.length > 60 ? `${value.slice(0, 60)}…` : value
    return JSON.stringify(shown)
  }
  if (typeof value === 'bigint') return `${value}n`
  if (value === null) return 'null'
  if (value === undefined) return 'undefined'
  if (typeof value === 'object') return `an ${Array.isArray(value) ? 'array' : 'object'}`
  return String(value)
}
