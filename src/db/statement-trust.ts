import type { CompiledQuery } from 'kysely'

const CACHE_SIZE = 2048
const verdicts = new Map<string, boolean>()

/**
 * True when a compiled Kysely query was built by the query builder alone: no
 * `RawNode` anywhere in its tree (no `sql` template, `sql.raw`, `CompiledQuery.raw`).
 * Such a statement's text was written by Kysely from identifiers and parameters,
 * so injected SQL cannot be in it; anything else counts as raw SQL, which may
 * change the session (SET, PREPARE, temp tables), and gets the session reset.
 * The verdict is cached by SQL text: the same text is the same statement.
 *
 * @internal
 * @example
 * ```ts
 * isBuilderQuery(db.selectFrom('accounts').selectAll().compile()) // true
 * isBuilderQuery(sql`select 1`.compile(db)) // false
 * ```
 */
export function isBuilderQuery(compiled: CompiledQuery): boolean {
  const cached = verdicts.get(compiled.sql)
  if (cached !== undefined) return cached
  const verdict = !containsRaw(compiled.query, 0)
  if (verdicts.size >= CACHE_SIZE) verdicts.clear()
  verdicts.set(compiled.sql, verdict)
  return verdict
}

function containsRaw(node: unknown, depth: number): boolean {
  if (depth > 200) return true // fail safe: treat an absurdly deep tree as raw
  if (Array.isArray(node)) return node.some((n) => containsRaw(n, depth + 1))
  if (typeof node !== 'object' || node === null) return false
  if ((node as { kind?: unknown }).kind === 'RawNode') return true
  for (const value of Object.values(node)) {
    if (typeof value === 'object' && value !== null && containsRaw(value, depth + 1)) return true
  }
  return false
}
