import { describeValue } from '../errors/describe-value.js'
import { InvalidInputError } from '../errors/index.js'

/** What an option of a library entry point must be. */
export type OptionKind = 'boolean' | 'pool' | 'queryable' | 'string' | 'list'

const EXPECTED: Readonly<Record<OptionKind, string>> = Object.freeze({
  boolean: 'true or false',
  pool: 'a pg.Pool (new pg.Pool({ connectionString }))',
  queryable: 'a pg.Pool or client',
  string: 'a non-empty string',
  list: 'an array',
})

/**
 * Checks the options of a library entry point that are given (undefined ones
 * are left to their defaults): a truthy string where a boolean goes (`dryRun:
 * 'yes'`) or a string where a list goes would otherwise be half-honoured, and a
 * missing pool a TypeError deep inside. Throws `InvalidInputError` naming the
 * function, the option, what it must be and what it got.
 *
 * @example
 * ```ts
 * checkOptionTypes('eraseTenant', options, { db: 'pool', dryRun: 'boolean' }, ['db'])
 * ```
 */
export function checkOptionTypes(
  where: string,
  options: unknown,
  kinds: Readonly<Record<string, OptionKind>>,
  required: readonly string[] = [],
): void {
  if (options === null || typeof options !== 'object') {
    throw new InvalidInputError(
      `${where}(options) needs an options object, got ${describeValue(options)}.`,
    )
  }
  const o = options as Record<string, unknown>
  for (const [key, kind] of Object.entries(kinds)) {
    const value = o[key]
    if (value === undefined) {
      if (required.includes(key)) {
        throw new InvalidInputError(`${where} needs \`${key}\`: ${EXPECTED[kind]}.`)
      }
      continue
    }
    if (!hasKind(value, kind)) {
      throw new InvalidInputError(
        `${where}: \`${key}\` must be ${EXPECTED[kind]}, got ${describeValue(value)}.`,
      )
    }
  }
}

function hasKind(value: unknown, kind: OptionKind): boolean {
  const v = value as { connect?: unknown; query?: unknown } | null
  switch (kind) {
    case 'boolean':
      return typeof value === 'boolean'
    case 'pool':
      return !!v && typeof v.connect === 'function' && typeof v.query === 'function'
    case 'queryable':
      return !!v && typeof v.query === 'function'
    case 'string':
      return typeof value === 'string' && value.length > 0
    case 'list':
      return Array.isArray(value)
  }
}
