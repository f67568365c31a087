/**
 * What a statement does to the transaction state of its connection:
 * - `begin`: opens a transaction (`BEGIN`, `START TRANSACTION`, with or without modes);
 * - `set-transaction`: `SET TRANSACTION ...` (must come before any query of the transaction);
 * - `end`: ends one (`COMMIT`, `END`, `ROLLBACK`, `ABORT`, `PREPARE TRANSACTION`;
 *   not `ROLLBACK TO SAVEPOINT`);
 * - `other`: anything else, savepoints included.
 *
 * @internal
 * @example
 * ```ts
 * statementKind('BEGIN;') // 'begin'
 * statementKind('rollback to savepoint sp1') // 'other'
 * ```
 */
export type StatementKind = 'begin' | 'set-transaction' | 'end' | 'other'

const FIRST_WORD = /^\s*([a-z]+)/i
const LEADING_COMMENTS = /^(?:\s+|--[^\n]*(?:\n|$)|\/\*[\s\S]*?\*\/)*/
const BEGIN = /^\s*(?:begin|start\s+transaction)\b/i
const SET_TRANSACTION = /^\s*set\s+transaction\b/i
const ROLLBACK_TO = /^\s*rollback(?:\s+(?:work|transaction))?\s+to\b/i
const PREPARE_TRANSACTION = /^\s*prepare\s+transaction\b/i
const ENDS = new Set(['commit', 'end', 'rollback', 'abort'])

/**
 * The {@link StatementKind} of `text`, judged by its first words (after leading
 * comments). Only the first statement of a multi-statement text counts.
 *
 * @internal
 */
export function statementKind(text: string): StatementKind {
  let sql = text
  const c = sql.charCodeAt(0)
  // Leading comments are rare: strip them only when the text starts like one (or with space).
  if (c === 45 /* - */ || c === 47 /* / */ || c <= 32) sql = sql.replace(LEADING_COMMENTS, '')
  const word = FIRST_WORD.exec(sql)?.[1]?.toLowerCase()
  if (word === undefined) return 'other'
  switch (word) {
    case 'begin':
    case 'start':
      return BEGIN.test(sql) ? 'begin' : 'other'
    case 'set':
      return SET_TRANSACTION.test(sql) ? 'set-transaction' : 'other'
    case 'prepare':
      return PREPARE_TRANSACTION.test(sql) ? 'end' : 'other'
    case 'rollback':
      return ROLLBACK_TO.test(sql) ? 'other' : 'end'
    default:
      return ENDS.has(word) ? 'end' : 'other'
  }
}

/**
 * Whether `text` holds one statement (an optional trailing `;` aside), so it can
 * go through the extended protocol with others in one pipeline. A `;` anywhere
 * else (even in a literal) counts as more: those texts take the plain path.
 *
 * @internal
 */
export function isSingleStatement(text: string): boolean {
  const i = text.indexOf(';')
  return i === -1 || text.slice(i + 1).trim() === ''
}
