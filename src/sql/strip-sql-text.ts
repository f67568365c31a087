/**
 * SQL or PL/pgSQL text (a function body, whose outer dollar quote is already gone) with its
 * comments blanked, and with `literals` its string literals too (`'...'`, `E'...'`, and nested
 * dollar-quoted `$tag$...$tag$`), each replaced by `''`. One pass over the text, so a `--` in a
 * literal is no comment and a quote in a comment opens no literal; nested block comments nest,
 * as in PostgreSQL; quoted identifiers are kept as they are. A word outside a literal stays
 * where it was (`execute 'select ' || x` keeps `execute`).
 *
 * @internal
 * @example
 * ```ts
 * stripSqlText("raise notice 'execute -- me'; -- a note", { literals: true }) // "raise notice ''; "
 * ```
 */
export function stripSqlText(src: string, { literals }: { literals: boolean }): string {
  let out = ''
  let i = 0
  while (i < src.length) {
    const c = src[i]!
    const next = src[i + 1]
    if (c === '-' && next === '-') {
      const end = src.indexOf('\n', i)
      out += ' '
      i = end === -1 ? src.length : end
    } else if (c === '/' && next === '*') {
      i = blockCommentEnd(src, i)
      out += ' '
    } else if (c === '"') {
      const end = quotedEnd(src, i, '"', false)
      out += src.slice(i, end)
      i = end
    } else if (c === "'") {
      const escapes = /[eE]/.test(src[i - 1] ?? '') && !WORD.test(src[i - 2] ?? '')
      const end = quotedEnd(src, i, "'", escapes)
      out += literals ? "''" : src.slice(i, end)
      i = end
    } else if (c === '$' && !WORD.test(src[i - 1] ?? '')) {
      const tag = /^\$([a-zA-Z_][a-zA-Z0-9_]*)?\$/.exec(src.slice(i, i + 64))?.[0]
      if (tag === undefined) {
        out += c
        i++
        continue
      }
      const close = src.indexOf(tag, i + tag.length)
      const end = close === -1 ? src.length : close + tag.length
      out += literals ? "''" : src.slice(i, end)
      i = end
    } else {
      out += c
      i++
    }
  }
  return out
}

/** A character that continues an identifier (or a parameter, `$1`): no dollar quote opens after it. */
const WORD = /[a-zA-Z0-9_$\u0080-\uffff]/

/** The index just past the block comment opening at `start` (nested ones included). */
function blockCommentEnd(src: string, start: number): number {
  let depth = 0
  let i = start
  while (i < src.length) {
    if (src.startsWith('/*', i)) {
      depth++
      i += 2
    } else if (src.startsWith('*/', i)) {
      depth--
      i += 2
      if (depth === 0) return i
    } else i++
  }
  return src.length
}

/** The index just past the quoted text opening at `start` (a doubled quote is one; `\` escapes in `E'...'`). */
function quotedEnd(src: string, start: number, quote: string, escapes: boolean): number {
  let i = start + 1
  while (i < src.length) {
    if (escapes && src[i] === '\\') i += 2
    else if (src[i] === quote && src[i + 1] === quote) i += 2
    else if (src[i] === quote) return i + 1
    else i++
  }
  return src.length
}
