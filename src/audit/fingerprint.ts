import { createHash } from 'node:crypto'

const MAX_STATEMENT = 4000

/**
 * Reduces an SQL statement to a shape without values: string literals
 * (`'...'`, `E'...'`, `$tag$...$tag$`), numbers and comments become `?` or go,
 * whitespace collapses. Kysely binds values as `$n` parameters anyway; this
 * also strips literals written into raw SQL. Returns the reduced statement
 * (at most 4000 characters) and a 16-hex-digit hash of it.
 *
 * @example
 * ```ts
 * statementFingerprint("select * from accounts where name = 'Bob' and id = 42")
 * // { statement: 'select * from accounts where name = ? and id = ?', fingerprint: '…' }
 * ```
 */
export function statementFingerprint(sql: string): { statement: string; fingerprint: string } {
  const reduced = sql
    .replace(/\$([A-Za-z_][A-Za-z0-9_]*)?\$[\s\S]*?\$\1\$/g, '?')
    .replace(/(?:\b[eEbBxX]|\b[uU]&)?'(?:[^']|'')*'/g, '?')
    .replace(/--[^\n]*/g, ' ')
    .replace(/\/\*[\s\S]*?\*\//g, ' ')
    .replace(/(?<![\w$."])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\b/g, '?')
    .replace(/\s+/g, ' ')
    .trim()
  const statement = reduced.length > MAX_STATEMENT ? `${reduced.slice(0, MAX_STATEMENT)}…` : reduced
  const fingerprint = createHash('sha256').update(reduced).digest('hex').slice(0, 16)
  return { statement, fingerprint }
}
