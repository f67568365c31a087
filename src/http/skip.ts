import { ConfigError } from '../errors/index.js'
import type { TenantRequest, TenantSkip } from './types.js'

/**
 * Compiles the `skip` option into a predicate. Strings match the path exactly
 * (`/health`), or as a prefix when they end in `/*` (`/public/*` matches
 * `/public` and everything under it); RegExps are tested against the path.
 *
 * @example
 * ```ts
 * const skipped = compileSkip(['/health', '/public/*'])
 * skipped({ method: 'GET', path: '/health', url: '/health', header: () => undefined, raw: undefined }) // true
 * ```
 * @internal
 */
export function compileSkip<Raw>(
  skip: TenantSkip<Raw> | undefined,
): (req: TenantRequest<Raw>) => boolean {
  if (skip === undefined) return () => false
  if (typeof skip === 'function') return (req) => skip(req) === true
  if (!Array.isArray(skip)) {
    throw new ConfigError(
      "tenant(): skip must be a list of paths (e.g. ['/health']) or a function.",
    )
  }
  const exact = new Set<string>()
  const prefixes: string[] = []
  const patterns: RegExp[] = []
  for (const entry of skip) {
    if (entry instanceof RegExp) patterns.push(entry)
    else if (typeof entry === 'string' && entry.startsWith('/')) {
      if (entry.endsWith('/*')) {
        exact.add(entry.slice(0, -2))
        prefixes.push(entry.slice(0, -1))
      } else exact.add(entry)
    } else {
      throw new ConfigError(
        `tenant(): skip entry ${JSON.stringify(entry)} must be a path starting with / or a RegExp.`,
      )
    }
  }
  return (req) => {
    const path = req.path
    if (exact.has(path)) return true
    for (const prefix of prefixes) if (path.startsWith(prefix)) return true
    for (const pattern of patterns) {
      pattern.lastIndex = 0
      if (pattern.test(path)) return true
    }
    return false
  }
}
