/**
 * The edges (`from -> to`) that lie on a cycle of the graph, self-loops
 * included: an edge is on a cycle exactly when both ends are in the same
 * strongly connected component (Tarjan's algorithm; recursive, which
 * is fine for schema-sized graphs).
 *
 * @example
 * ```ts
 * cyclicEdges([{ from: 'a', to: 'b' }, { from: 'b', to: 'a' }, { from: 'a', to: 'c' }])
 * // Set { 0, 1 }
 * ```
 * @internal
 */
export function cyclicEdges(edges: readonly { from: string; to: string }[]): Set<number> {
  const adjacency = new Map<string, string[]>()
  for (const e of edges) {
    adjacency.set(e.from, [...(adjacency.get(e.from) ?? []), e.to])
    if (!adjacency.has(e.to)) adjacency.set(e.to, [])
  }
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const component = new Map<string, number>()
  const stack: string[] = []
  const onStack = new Set<string>()
  let counter = 0
  let components = 0
  const connect = (v: string) => {
    index.set(v, counter)
    low.set(v, counter)
    counter++
    stack.push(v)
    onStack.add(v)
    for (const w of adjacency.get(v) ?? []) {
      if (!index.has(w)) {
        connect(w)
        low.set(v, Math.min(low.get(v)!, low.get(w)!))
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!))
      }
    }
    if (low.get(v) === index.get(v)) {
      let w: string | undefined
      do {
        w = stack.pop()!
        onStack.delete(w)
        component.set(w, components)
      } while (w !== v)
      components++
    }
  }
  for (const v of adjacency.keys()) if (!index.has(v)) connect(v)
  const out = new Set<number>()
  edges.forEach((e, i) => {
    if (component.get(e.from) === component.get(e.to)) out.add(i)
  })
  return out
}
