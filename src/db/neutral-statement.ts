import type { Queryable } from '../sql/queryable.js'
import { UNWRITABLE_RELATIONS } from '../sql/unscopable-functions.js'
import { MEMBERSHIPS } from './role-check.js'

/**
 * Which statement texts provably leave the session as they found it, so the
 * session reset after raw SQL (see `SessionGuard`) may be skipped after them.
 *
 * Raw SQL can change the session in many ways: SET / RESET, `set_config(...,
 * false)`, SET ROLE, PREPARE / DEALLOCATE, temporary tables (`CREATE TEMP`,
 * `SELECT ... INTO`), LISTEN, cursors WITH HOLD, DO blocks, any function that
 * does one of these, and functions that run SQL text they are given
 * (`ts_stat(text)`, also as `$1.ts_stat` or `(expr).ts_stat`). The judge below
 * is an allow-list, fail closed: a text is neutral only when it is ONE of
 *
 * - a SELECT, INSERT, UPDATE or DELETE (also under a `WITH` list whose bodies
 *   are such statements) that calls no function by name except the aggregates
 *   count, sum, min, max, avg, array_agg, string_agg, json_agg, jsonb_agg,
 *   bool_and and bool_or (an aggregate cannot be a FROM item; a FROM item that
 *   is a function is what makes `alias.function` run a function on a scalar);
 *   no other keyword with parentheses than plain syntax (`in (`, `exists (`,
 *   `values (`, a subquery, an INSERT column list); no `INTO` except INSERT's;
 *   no field selection on an expression, parameter or subscript (`(x).f`,
 *   `$1.f`); no CURRENT_USER / SESSION_USER / USER / CURRENT_ROLE /
 *   CURRENT_CATALOG / CURRENT_SCHEMA / SYSTEM_USER; no `pg_settings` (its update
 *   rule calls `set_config(..., false)`);
 * - or plain transaction control: BEGIN / START TRANSACTION / SET TRANSACTION
 *   with isolation and access modes, COMMIT / END / ROLLBACK / ABORT (not AND
 *   CHAIN), SAVEPOINT, RELEASE, ROLLBACK TO;
 *
 * written in printable ASCII with no `;` (but a last one), no comment, no
 * backslash and no dollar sign other than a parameter (`$1`).
 *
 * What the server runs by itself is the schema's: triggers, column defaults,
 * rules, views, policies, operators, casts, and functions of a table's row type
 * written as `alias.fn`. They are trusted as they are for Kysely builder
 * queries. That premise needs a runtime role that cannot create objects in any
 * schema (or schemas in the database): see {@link MAY_CREATE_SQL}.
 *
 * Verdicts are cached by text.
 *
 * @internal
 * @example
 * ```ts
 * isSessionNeutral('select "id" from "accounts" where "tenant_id" = $1') // true
 * isSessionNeutral("select set_config('rowtenancy.tenant_id', '2', false)") // false
 * ```
 */
export function isSessionNeutral(text: string): boolean {
  const cached = verdicts.get(text)
  if (cached !== undefined) return cached
  const verdict = judge(text)
  if (text.length <= CACHEABLE_LENGTH) {
    if (verdicts.size >= CACHE_SIZE) verdicts.clear()
    verdicts.set(text, verdict)
  }
  return verdict
}

/**
 * True when the connected role, or any role it is a member of (any path, any
 * option, `pg_database_owner` for the database's owner), may create objects in some schema (a function or operator that
 * shadows a built-in one, a table that shadows the app's) or schemas in the
 * database, owns a table, view, sequence, function or type (an owner may change
 * a default, add a rule or a trigger without CREATE), or may create triggers on
 * a table. Then {@link isSessionNeutral}'s premise does not hold, and every
 * statement gets the reset.
 *
 * @internal
 */
export const MAY_CREATE_SQL = `
with recursive reach (oid) as (
  select r.oid from pg_catalog.pg_roles r where r.rolname = current_user
  union
  select m.roleid from reach join ${MEMBERSHIPS} m on m.member = reach.oid
)
select exists (
         select 1 from reach, pg_catalog.pg_namespace n
          where n.nspname not like 'pg\\_temp\\_%' and n.nspname not like 'pg\\_toast\\_temp\\_%'
            and pg_catalog.has_schema_privilege(reach.oid, n.oid, 'CREATE'))
    or exists (
         select 1 from reach
          where pg_catalog.has_database_privilege(reach.oid, pg_catalog.current_database(), 'CREATE'))
    or exists (
         select 1 from reach, pg_catalog.pg_class c
          where c.relowner = reach.oid
             or (c.relkind in ('r', 'p', 'v', 'f')
                 and c.relnamespace <> 'pg_catalog'::pg_catalog.regnamespace
                 and c.relnamespace <> 'information_schema'::pg_catalog.regnamespace
                 and pg_catalog.has_table_privilege(reach.oid, c.oid, 'TRIGGER')))
    or exists (select 1 from reach, pg_catalog.pg_proc p where p.proowner = reach.oid)
    or exists (select 1 from reach, pg_catalog.pg_type t where t.typowner = reach.oid)
       as may_create`

/**
 * Whether statements judged neutral may skip the reset on this database: false
 * when the runtime role may create objects (see {@link MAY_CREATE_SQL}), or when
 * the server refuses the question.
 *
 * @internal
 * @example
 * ```ts
 * const skipResets = await neutralStatementsTrusted(runtimePool)
 * ```
 */
export async function neutralStatementsTrusted(db: Queryable): Promise<boolean> {
  try {
    const { rows } = await db.query(MAY_CREATE_SQL)
    return (rows[0] as { may_create?: unknown } | undefined)?.may_create === false
  } catch (err) {
    // A refusal of the query itself (permissions, an odd server) only means: reset always.
    // A connection, resource or server failure is the caller's to report.
    const code = (err as { code?: unknown } | null)?.code
    if (typeof code === 'string' && !/^(?:08|53|57|58)/.test(code)) return false
    throw err
  }
}

const CACHE_SIZE = 2048
const CACHEABLE_LENGTH = 4_096
const MAX_LENGTH = 1_000_000
const verdicts = new Map<string, boolean>()

type Kind = 'word' | 'quoted' | 'string' | 'number' | 'param' | 'char'

interface Token {
  readonly kind: Kind
  /** Lower-cased for words; the character for `char`. */
  readonly value: string
}

/** Statements whose first word may head a neutral statement (INSERT only with INTO). */
const HEADS = new Set(['select', 'insert', 'update', 'delete'])
const CTE_HEADS = new Set(['select', 'insert', 'update', 'delete', 'values'])

/**
 * Keywords that may stand before `(`: reserved or column-name keywords (never a
 * function's name unquoted) that are plain syntax, none of them a function-like
 * construct that could be a FROM item (CAST, COALESCE, NULLIF, GREATEST, ...).
 */
const PAREN_KEYWORDS = new Set([
  'select',
  'from',
  'where',
  'and',
  'or',
  'not',
  'in',
  'any',
  'some',
  'all',
  'exists',
  'values',
  'as',
  'on',
  'using',
  'then',
  'else',
  'when',
  'case',
  'array',
  'row',
  'distinct',
  'having',
  'limit',
  'offset',
  'returning',
  'between',
  'lateral',
  'union',
  'intersect',
  'except',
])

/** Built-in aggregates that may be called: they change nothing and cannot be FROM items. */
const AGGREGATES = new Set([
  'count',
  'sum',
  'min',
  'max',
  'avg',
  'array_agg',
  'string_agg',
  'json_agg',
  'jsonb_agg',
  'bool_and',
  'bool_or',
])

/** Keyword functions without parentheses whose value is a name or text (FROM items too). */
const BANNED_WORDS = new Set([
  'current_user',
  'session_user',
  'user',
  'current_role',
  'current_catalog',
  'current_schema',
  'system_user',
])

/** Operator characters and punctuation after which `(` opens a plain parenthesis. */
const BEFORE_PAREN = new Set([
  '(',
  ',',
  '[',
  '=',
  '<',
  '>',
  '+',
  '-',
  '*',
  '/',
  '%',
  '^',
  '|',
  '&',
  '~',
  '!',
  '@',
  '#',
  '?',
])

const NAME = `(?:[a-z_][a-z0-9_$]*|"[^"]+")`
const MODE = `(?:isolation\\s+level\\s+(?:serializable|repeatable\\s+read|read\\s+committed|read\\s+uncommitted)|read\\s+(?:write|only)|(?:not\\s+)?deferrable)`
const MORE_MODES = `(?:(?:\\s*,\\s*|\\s+)${MODE})*`
const MODES = `(?:\\s+${MODE}${MORE_MODES})?`
const TRANSACTION_CONTROL = [
  new RegExp(`^(?:begin(?:\\s+(?:work|transaction))?|start\\s+transaction)${MODES}$`, 'i'),
  new RegExp(`^set\\s+transaction\\s+${MODE}${MORE_MODES}$`, 'i'),
  /^(?:commit|end|rollback|abort)(?:\s+(?:work|transaction))?$/i,
  new RegExp(`^savepoint\\s+${NAME}$`, 'i'),
  new RegExp(`^release(?:\\s+savepoint)?\\s+${NAME}$`, 'i'),
  new RegExp(`^rollback(?:\\s+(?:work|transaction))?\\s+to(?:\\s+savepoint)?\\s+${NAME}$`, 'i'),
]

function judge(raw: string): boolean {
  if (raw.length > MAX_LENGTH) return false
  let text = raw.trim()
  if (text.endsWith(';')) text = text.slice(0, -1).trim()
  if (!plainCharacters(text)) return false
  if (TRANSACTION_CONTROL.some((re) => re.test(text))) return true
  const tokens = tokenize(text)
  if (!tokens) return false
  const checked = heads(tokens)
  if (!checked) return false
  for (let i = 0; i < tokens.length; i++) if (!tokenAllowed(tokens, i, checked)) return false
  return true
}

/**
 * Printable ASCII, tabs and line breaks only; no `;`, no comment, no backslash
 * (escape strings, `standard_conforming_strings = off`). A dollar sign is
 * judged by the tokenizer (a parameter, or inside a name or quotes).
 */
function plainCharacters(text: string): boolean {
  if (text.length === 0) return false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === 9 || c === 10 || c === 13) continue
    if (c < 32 || c > 126) return false
    if (c === 59 /* ; */ || c === 92 /* \ */) return false
    if (c === 45 /* - */ && text.charCodeAt(i + 1) === 45) return false
    if (c === 47 /* / */ && text.charCodeAt(i + 1) === 42) return false
  }
  return true
}

const isSpace = (c: number) => c === 32 || c === 9 || c === 10 || c === 13
const isDigit = (c: number) => c >= 48 && c <= 57
const isWordStart = (c: number) => (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95
const isWordPart = (c: number) => isWordStart(c) || isDigit(c) || c === 36

/**
 * PostgreSQL's tokens of a text that passed {@link plainCharacters}; undefined
 * when a quote is unterminated or a dollar sign starts anything but a parameter.
 */
function tokenize(text: string): Token[] | undefined {
  const tokens: Token[] = []
  let i = 0
  while (i < text.length) {
    const c = text.charCodeAt(i)
    if (isSpace(c)) {
      i++
    } else if (isWordStart(c)) {
      let j = i + 1
      while (j < text.length && isWordPart(text.charCodeAt(j))) j++
      tokens.push({ kind: 'word', value: text.slice(i, j).toLowerCase() })
      i = j
    } else if (isDigit(c)) {
      let j = i + 1
      while (j < text.length && (isDigit(text.charCodeAt(j)) || text.charCodeAt(j) === 95)) j++
      if (text.charCodeAt(j) === 46 /* . */) {
        j++
        while (j < text.length && (isDigit(text.charCodeAt(j)) || text.charCodeAt(j) === 95)) j++
      }
      tokens.push({ kind: 'number', value: text.slice(i, j) })
      i = j
    } else if (c === 36 /* $ */) {
      // A token that starts with `$` is a parameter, or dollar quoting (refused).
      let j = i + 1
      while (j < text.length && isDigit(text.charCodeAt(j))) j++
      if (j === i + 1) return undefined
      tokens.push({ kind: 'param', value: text.slice(i, j) })
      i = j
    } else if (c === 39 /* ' */ || c === 34 /* " */) {
      // A quote doubled is part of the literal or identifier; backslashes were refused.
      let j = i + 1
      for (;;) {
        if (j >= text.length) return undefined
        if (text.charCodeAt(j) === c) {
          if (text.charCodeAt(j + 1) === c) {
            j += 2
            continue
          }
          break
        }
        j++
      }
      tokens.push({ kind: c === 39 ? 'string' : 'quoted', value: text.slice(i, j + 1) })
      i = j + 1
    } else {
      tokens.push({ kind: 'char', value: text[i]! })
      i++
    }
  }
  return tokens
}

interface Heads {
  /** Indexes of the tokens that head a statement (the main one, each WITH body). */
  readonly heads: Set<number>
  /** Indexes of `(` that open a column list (INSERT's, a WITH name's) or a WITH body. */
  readonly plainParens: Set<number>
}

const isWord = (t: Token | undefined, value?: string) =>
  t !== undefined && t.kind === 'word' && (value === undefined || t.value === value)
const isChar = (t: Token | undefined, value: string) =>
  t !== undefined && t.kind === 'char' && t.value === value
const isName = (t: Token | undefined) =>
  t !== undefined && (t.kind === 'word' || t.kind === 'quoted')

/** The index of the `)` closing the `(` at `open`, or -1. */
function closing(tokens: readonly Token[], open: number): number {
  let depth = 0
  for (let i = open; i < tokens.length; i++) {
    const t = tokens[i]!
    if (t.kind !== 'char') continue
    if (t.value === '(') depth++
    else if (t.value === ')' && --depth === 0) return i
  }
  return -1
}

/** A column list `( name, name, ... )` at `open`: the index after it, or -1. */
function columnList(tokens: readonly Token[], open: number): number {
  let i = open + 1
  for (;;) {
    if (!isName(tokens[i])) return -1
    i++
    if (isChar(tokens[i], ')')) return i + 1
    if (!isChar(tokens[i], ',')) return -1
    i++
  }
}

/**
 * Walks the statement heads: the first word, or a WITH list (`name [(cols)] as
 * [not] [materialized] ( body )`, comma separated) and the main statement after
 * it. Every head must be a neutral statement's; INSERT's column list is marked.
 */
function heads(tokens: readonly Token[]): Heads | undefined {
  const found: Heads = { heads: new Set(), plainParens: new Set() }
  let i = 0
  if (isWord(tokens[0], 'with')) {
    i = 1
    if (isWord(tokens[i], 'recursive')) i++
    for (;;) {
      if (!isName(tokens[i])) return undefined
      i++
      if (isChar(tokens[i], '(')) {
        found.plainParens.add(i)
        i = columnList(tokens, i)
        if (i < 0) return undefined
      }
      if (!isWord(tokens[i], 'as')) return undefined
      i++
      if (isWord(tokens[i], 'not')) i++
      if (isWord(tokens[i], 'materialized')) i++
      if (!isChar(tokens[i], '(')) return undefined
      found.plainParens.add(i)
      const end = closing(tokens, i)
      const head = tokens[i + 1]
      if (end < 0 || !isWord(head) || !CTE_HEADS.has(head!.value)) return undefined
      if (!markHead(tokens, i + 1, found)) return undefined
      i = end + 1
      if (isChar(tokens[i], ',')) {
        i++
        continue
      }
      break
    }
  }
  const head = tokens[i]
  if (!isWord(head) || !HEADS.has(head!.value)) return undefined
  return markHead(tokens, i, found) ? found : undefined
}

/** Records the head at `i`; for INSERT, requires INTO and marks its column list. */
function markHead(tokens: readonly Token[], i: number, found: Heads): boolean {
  found.heads.add(i)
  if (tokens[i]!.value !== 'insert') return true
  let j = i + 1
  if (!isWord(tokens[j], 'into')) return false
  j++
  if (!isName(tokens[j])) return false
  j++
  if (isChar(tokens[j], '.')) {
    if (!isName(tokens[j + 1])) return false
    j += 2
  }
  if (isWord(tokens[j], 'as')) {
    if (!isName(tokens[j + 1])) return false
    j += 2
  }
  if (isChar(tokens[j], '(')) found.plainParens.add(j)
  return true
}

function tokenAllowed(tokens: readonly Token[], i: number, found: Heads): boolean {
  const t = tokens[i]!
  const before = tokens[i - 1]
  // pg_settings' update rule calls set_config(..., false): a write there sets the session.
  if (t.kind === 'quoted' && UNWRITABLE_RELATIONS.has(t.value.slice(1, -1))) return false
  if (t.kind === 'word') {
    if (BANNED_WORDS.has(t.value) || UNWRITABLE_RELATIONS.has(t.value)) return false
    // INTO only as INSERT INTO (SELECT ... INTO creates a table).
    if (t.value === 'into') return isWord(before, 'insert') && found.heads.has(i - 1)
    return true
  }
  if (t.kind !== 'char') return true
  if (t.value === '.') {
    // A qualified name (schema.table, table.column, alias.*), never a field of
    // an expression, parameter or subscript: `(x).f` and `$1.f` call f(x).
    const after = tokens[i + 1]
    return isName(before) && (isName(after) || isChar(after, '*'))
  }
  if (t.value !== '(') return true
  if (found.plainParens.has(i)) return true
  if (before === undefined) return false
  if (before.kind === 'char') return BEFORE_PAREN.has(before.value)
  if (before.kind !== 'word') return false // "quoted"( , 'literal'( , $1( , 1(
  if (isChar(tokens[i - 2], '.')) return false // a qualified function name
  return PAREN_KEYWORDS.has(before.value) || AGGREGATES.has(before.value)
}
