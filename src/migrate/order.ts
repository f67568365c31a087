/**
 * Sorts tables so that a table comes after the tables its foreign keys point to.
 * Self-references are ignored; a cycle is broken at the alphabetically first
 * table still waiting, and the tables caught in cycles are returned so the
 * caller can defer or disable the constraints between them. Deterministic.
 *
 * @example
 * ```ts
 * foreignKeyOrder(['book', 'author'], [['book', 'author']])
 * // { order: ['author', 'book'], cyclic: Set {} }
 * foreignKeyOrder(['a', 'b'], [['a', 'b'], ['b', 'a']])
 * // { order: ['a', 'b'], cyclic: Set { 'a', 'b' } }
 * ```
 */
export function foreignKeyOrder(
  tables: readonly string[],
  edges: readonly (readonly [child: string, parent: string])[],
): { order: string[]; cyclic: Set<string> } {
  const all = new Set(tables)
  const parents = new Map<string, Set<string>>(tables.map((t) => [t, new Set()]))
  for (const [child, parent] of edges) {
    if (child === parent || !all.has(child) || !all.has(parent)) continue
    parents.get(child)!.add(parent)
  }
  const order: string[] = []
  const cyclic = new Set<string>()
  const done = new Set<string>()
  const waiting = [...tables].sort()
  while (waiting.length > 0) {
    const ready = waiting.filter((t) => [...parents.get(t)!].every((p) => done.has(p)))
    const next = ready.length > 0 ? ready : waiting.filter((t) => inCycle(t, parents, done))
    const pick = next.length > 0 ? next : waiting
    if (ready.length === 0) for (const t of pick) cyclic.add(t)
    const take = ready.length > 0 ? ready : [pick[0]!]
    for (const t of take) {
      order.push(t)
      done.add(t)
      waiting.splice(waiting.indexOf(t), 1)
    }
  }
  return { order, cyclic }
}

/** Whether `start` reaches itself through parents not yet done. */
function inCycle(start: string, parents: Map<string, Set<string>>, done: Set<string>): boolean {
  const seen = new Set<string>()
  const stack = [...parents.get(start)!]
  while (stack.length > 0) {
    const t = stack.pop()!
    if (t === start) return true
    if (seen.has(t) || done.has(t)) continue
    seen.add(t)
    stack.push(...(parents.get(t) ?? []))
  }
  return false
}
