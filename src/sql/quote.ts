import { InvalidInputError } from '../errors/index.js'

/**
 * Quotes a PostgreSQL identifier (schema, table, column, role): wraps it in
 * double quotes and doubles any `"` inside. The one helper every piece of DDL or
 * dynamic SQL in rowtenancy goes through. Rejects empty names, NUL bytes and
 * names over 63 bytes (PostgreSQL would silently truncate them).
 *
 * @example
 * ```ts
 * quoteIdent('accounts') // '"accounts"'
 * quoteIdent('we"ird') // '"we""ird"'
 * ```
 */
export function quoteIdent(name: string): string {
  if (typeof name !== 'string' || name.length === 0) {
    throw new InvalidInputError('An SQL identifier must be a non-empty string.')
  }
  if (name.includes('\u0000')) {
    throw new InvalidInputError(
      `The identifier ${JSON.stringify(name)} contains a NUL byte, which PostgreSQL names cannot hold; remove it.`,
    )
  }
  if (Buffer.byteLength(name, 'utf8') > 63) {
    throw new InvalidInputError(
      `The identifier ${JSON.stringify(name)} is longer than PostgreSQL's 63-byte limit; shorten it.`,
    )
  }
  return `"${name.replaceAll('"', '""')}"`
}

/**
 * Quotes a possibly schema-qualified name given as separate parts.
 *
 * @example
 * ```ts
 * quoteQualified('tenant_1', 'accounts') // '"tenant_1"."accounts"'
 * quoteQualified(undefined, 'accounts') // '"accounts"'
 * ```
 */
export function quoteQualified(schema: string | undefined, name: string): string {
  return schema === undefined ? quoteIdent(name) : `${quoteIdent(schema)}.${quoteIdent(name)}`
}

/**
 * Quotes a string literal: wraps it in single quotes and doubles any `'`. A
 * value with a backslash becomes an escape string (`E'...'`, backslashes
 * doubled), which means the same whatever `standard_conforming_strings` says:
 * in a plain literal with that setting off, `\'` would end the literal early.
 * For places PostgreSQL takes no parameters (DDL, `SET LOCAL`, statements
 * batched in one simple-protocol string). Rejects NUL bytes.
 *
 * @example
 * ```ts
 * quoteLiteral("o'clock") // "'o''clock'"
 * quoteLiteral('a\\b') // "E'a\\\\b'"
 * ```
 */
export function quoteLiteral(value: string): string {
  if (typeof value !== 'string') {
    throw new InvalidInputError('An SQL literal must be a string.')
  }
  if (value.includes('\u0000')) {
    throw new InvalidInputError(
      'An SQL literal cannot contain a NUL byte (PostgreSQL text cannot hold one); remove it.',
    )
  }
  const quoted = value.replaceAll("'", "''")
  return value.includes('\\') ? `E'${quoted.replaceAll('\\', '\\\\')}'` : `'${quoted}'`
}

/**
 * `text` with each placeholder `$n` replaced by `literals[n - 1]` (SQL text, already quoted), in
 * one pass, so that a statement can go without parameters in a multi-statement simple query.
 * For statement texts of our own whose only `$n` are placeholders (not in a string or a
 * dollar-quoted body).
 *
 * @example
 * ```ts
 * withLiterals('select * from t where a = $1 and b = any($2)', [quoteLiteral("it's"), "array['x']"])
 * // "select * from t where a = 'it''s' and b = any(array['x'])"
 * ```
 */
export function withLiterals(text: string, literals: readonly string[]): string {
  return text.replace(/\$(\d+)/g, (_m, n: string) => {
    const literal = literals[Number(n) - 1]
    if (literal === undefined) throw new TypeError(`No literal for $${n}.`)
    return literal
  })
}
