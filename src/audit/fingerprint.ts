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
  const n = sql.length
  while (i < n) {
    const c = sql[i]!
    const start = i
    if (/\s/.test(c)) {
      while (i < n && /\s/.test(sql[i]!)) i++
      tokens.push({ kind: 'space', text: sql.slice(start, i) })
      continue
    }
    if (c === '-' && sql[i + 1] === '-') {
      while (i < n && sql[i] !== '\n') i++
      tokens.push({ kind: 'comment', text: sql.slice(start, i) })
      continue
    }
    if (c === '/' && sql[i + 1] === '*') {
      let depth = 0
      while (i < n) {
        if (sql[i] === '/' && sql[i + 1] === '*') {
          depth++
          i += 2
        } else if (sql[i] === '*' && sql[i + 1] === '/') {
          depth--
          i += 2
          if (depth === 0) break
        } else i++
      }
      tokens.push({ kind: 'comment', text: sql.slice(start, i) })
      continue
    }
    const prefix = /^(?:[eE]|[bB]|[xX]|[nN]|[uU]&)(?=')/.exec(sql.slice(i, i + 3))?.[0] ?? ''
    if (c === "'" || (prefix !== '' && isWordStart(sql, i))) {
      const escapes = prefix.toLowerCase() === 'e'
      i += prefix.length + 1
      while (i < n) {
        const ch = sql[i]!
        if (escapes && ch === '\\') i += 2
        else if (ch === "'" && sql[i + 1] === "'") i += 2
        else if (ch === "'") {
          i++
          break
        } else i++
      }
      tokens.push({ kind: 'literal', text: sql.slice(start, i) })
      continue
    }
    if (c === '"' || ((c === 'u' || c === 'U') && sql[i + 1] === '&' && sql[i + 2] === '"')) {
      i += c === '"' ? 1 : 3
      while (i < n) {
        if (sql[i] === '"' && sql[i + 1] === '"') i += 2
        else if (sql[i] === '"') {
          i++
          break
        } else i++
      }
      tokens.push({ kind: 'ident', text: sql.slice(start, i) })
      continue
    }
    if (c === '$') {
      const tag = /^\$(?:[A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$/.exec(sql.slice(i))
      if (tag && !/[\w$]/.test(sql[i - 1] ?? '')) {
        const end = sql.indexOf(tag[0], i + tag[0].length)
        i = end === -1 ? n : end + tag[0].length
        tokens.push({ kind: 'literal', text: sql.slice(start, i) })
        continue
      }
      // A parameter ($1) or part of an identifier.
      i++
      while (i < n && /[0-9]/.test(sql[i]!)) i++
      tokens.push({ kind: 'other', text: sql.slice(start, i) })
      continue
    }
    if (/[0-9]/.test(c) || (c === '.' && /[0-9]/.test(sql[i + 1] ?? ''))) {
      if (isWordStart(sql, i)) {
        const num =
          /^(?:0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|(?:\d[\d_]*)?\.?\d[\d_]*(?:[eE][-+]?\d+)?)/.exec(
            sql.slice(i),
          )
        i += Math.max(1, num?.[0].length ?? 1)
        tokens.push({ kind: 'literal', text: sql.slice(start, i) })
        continue
      }
    }
    if (/[A-Za-z_\u0080-\uffff]/.test(c)) {
      while (i < n && /[A-Za-z0-9_$\u0080-\uffff]/.test(sql[i]!)) i++
      tokens.push({ kind: 'ident', text: sql.slice(start, i) })
      continue
    }
    i++
    tokens.push({ kind: 'other', text: c })
  }
  return tokens
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
