import { createHash } from 'node:crypto'

/** One lexical piece of a statement, as PostgreSQL's scanner splits it. */
interface Token {
  readonly kind: 'literal' | 'comment' | 'space' | 'ident' | 'other'
  readonly text: string
}

/**
 * Splits SQL the way PostgreSQL's scanner does for the parts that matter here:
 * string literals (`'..'` with `''`, `E'..'` with backslash escapes, `B'..'`,
 * `X'..'`, `U&'..'`, `N'..'`), dollar-quoted strings, quoted identifiers
 * (`".."` with `""`, `U&".."`), `--` and nested `/* *\/` comments, numbers.
 * Anything unterminated runs to the end of the text, as the server would read it.
 */
function tokenize(sql: string): Token[] {
  const tokens: Token[] = []
  let i = 0
  while (i < sql.length) {
    const { kind, end } = scanToken(sql, i)
    tokens.push({ kind, text: sql.slice(i, end) })
    i = end
  }
  return tokens
}

/** The kind of the token at `start` and the position just after it. */
interface Scanned {
  readonly kind: Token['kind']
  readonly end: number
}

/** Reads the one token that starts at `i`. */
function scanToken(sql: string, i: number): Scanned {
  const c = sql[i]!
  if (/\s/.test(c)) return { kind: 'space', end: skipWhile(sql, i, /\s/) }
  if (c === '-' && sql[i + 1] === '-') {
    const newline = sql.indexOf('\n', i)
    return { kind: 'comment', end: newline === -1 ? sql.length : newline }
  }
  if (c === '/' && sql[i + 1] === '*') return { kind: 'comment', end: blockCommentEnd(sql, i) }
  const prefix = /^(?:[eE]|[bB]|[xX]|[nN]|[uU]&)(?=')/.exec(sql.slice(i, i + 3))?.[0] ?? ''
  if (c === "'" || (prefix !== '' && isWordStart(sql, i))) {
    return { kind: 'literal', end: stringEnd(sql, i, prefix) }
  }
  if (c === '"' || ((c === 'u' || c === 'U') && sql[i + 1] === '&' && sql[i + 2] === '"')) {
    return { kind: 'ident', end: quotedIdentEnd(sql, i + (c === '"' ? 1 : 3)) }
  }
  if (c === '$') return scanDollar(sql, i)
  if ((/[0-9]/.test(c) || (c === '.' && /[0-9]/.test(sql[i + 1] ?? ''))) && isWordStart(sql, i)) {
    const num =
      /^(?:0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|(?:\d[\d_]*)?\.?\d[\d_]*(?:[eE][-+]?\d+)?)/.exec(
        sql.slice(i),
      )
    return { kind: 'literal', end: i + Math.max(1, num?.[0].length ?? 1) }
  }
  if (/[A-Za-z_\u0080-\uffff]/.test(c)) {
    return { kind: 'ident', end: skipWhile(sql, i, /[A-Za-z0-9_$\u0080-\uffff]/) }
  }
  return { kind: 'other', end: i + 1 }
}

/** The first position from `i` whose character does not match `pattern`. */
function skipWhile(sql: string, i: number, pattern: RegExp): number {
  let j = i
  while (j < sql.length && pattern.test(sql[j]!)) j++
  return j
}

/** The end of a nested `/* *\/` comment starting at `i` (the end of the text if unterminated). */
function blockCommentEnd(sql: string, i: number): number {
  let j = i
  let depth = 0
  while (j < sql.length) {
    if (sql[j] === '/' && sql[j + 1] === '*') {
      depth++
      j += 2
    } else if (sql[j] === '*' && sql[j + 1] === '/') {
      depth--
      j += 2
      if (depth === 0) break
    } else j++
  }
  return j
}

/** The end of a string literal at `i` with its `prefix` (`E`, `B`, `X`, `U&`, `N` or none). */
function stringEnd(sql: string, i: number, prefix: string): number {
  const escapes = prefix.toLowerCase() === 'e'
  let j = i + prefix.length + 1
  while (j < sql.length) {
    const ch = sql[j]!
    if (escapes && ch === '\\') j += 2
    else if (ch === "'" && sql[j + 1] === "'") j += 2
    else if (ch === "'") return j + 1
    else j++
  }
  return j
}

/** The end of a quoted identifier whose body starts at `j` (after `"` or `U&"`). */
function quotedIdentEnd(sql: string, j: number): number {
  let k = j
  while (k < sql.length) {
    if (sql[k] === '"' && sql[k + 1] === '"') k += 2
    else if (sql[k] === '"') return k + 1
    else k++
  }
  return k
}

/** A dollar-quoted string at `i`, or a `$n` parameter / the `$` inside an identifier. */
function scanDollar(sql: string, i: number): Scanned {
  const tag = /^\$(?:[A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$/.exec(sql.slice(i))
  if (tag && !/[\w$]/.test(sql[i - 1] ?? '')) {
    const end = sql.indexOf(tag[0], i + tag[0].length)
    return { kind: 'literal', end: end === -1 ? sql.length : end + tag[0].length }
  }
  return { kind: 'other', end: skipWhile(sql, i + 1, /[0-9]/) }
}

/** Whether position `i` starts a token (not the middle of a word such as `t1` or `$1`). */
function isWordStart(sql: string, i: number): boolean {
  return !/[A-Za-z0-9_$\u0080-\uffff]/.test(sql[i - 1] ?? '')
}

/**
 * The audited form of an SQL statement: the statement itself with every
 * literal value (strings, dollar-quoted strings, numbers) replaced by `?`,
 * comments dropped and whitespace collapsed; identifiers and `$n` parameters are
 * kept as written, read by a scanner that knows quoting, so nothing of the
 * statement is lost (`as "note--"` is an identifier, not a comment). The
 * fingerprint is a 16-hex-digit hash of the statement's shape: literals as `?`,
 * comments dropped, whitespace collapsed and unquoted words lower-cased, so two
 * statements that differ only in values, comments or layout share it.
 *
 * @example
 * ```ts
 * statementFingerprint("select * from accounts where name = 'Bob' and id = 42")
 * // { statement: 'select * from accounts where name = ? and id = ?', fingerprint: '…' }
 * ```
 */
export function statementFingerprint(sql: string): { statement: string; fingerprint: string } {
  const tokens = tokenize(sql)
  let statement = ''
  const shape: string[] = []
  for (const token of tokens) {
    if (token.kind === 'literal') {
      statement += '?'
      shape.push('?')
    } else if (token.kind === 'comment' || token.kind === 'space') {
      if (statement !== '' && !statement.endsWith(' ')) statement += ' '
    } else {
      statement += token.text
      shape.push(
        token.kind === 'ident' && token.text[0] !== '"' ? token.text.toLowerCase() : token.text,
      )
    }
  }
  const fingerprint = createHash('sha256').update(shape.join(' ')).digest('hex').slice(0, 16)
  return { statement: statement.trim(), fingerprint }
}
