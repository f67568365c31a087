/**
 * The schema names of a `search_path` setting, in order: quoted names unquoted, others
 * lower-cased (`$user` stays as written).
 *
 * @internal
 * @example
 * ```ts
 * searchPathNames('"$user", Public, "My Schema"') // ['$user', 'public', 'My Schema']
 * ```
 */
export function searchPathNames(path: string): string[] {
  const names: string[] = []
  for (const m of path.matchAll(/\s*("(?:[^"]|"")*"|[^,]*[^,\s])\s*(?:,|$)/g)) {
    const item = m[1]
    if (!item) continue
    names.push(item.startsWith('"') ? item.slice(1, -1).replaceAll('""', '"') : item.toLowerCase())
  }
  return names
}
