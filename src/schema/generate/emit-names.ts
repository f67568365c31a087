/**
 * Names for emitted ORM code: identifiers made from SQL names (any characters)
 * that are valid in TypeScript and Prisma, and unique within their scope.
 *
 * @internal
 */
export class NameScope {
  readonly #used = new Set<string>()

  /** A fresh identifier for `base` (suffixed `_2`, `_3` ... when taken). */
  take(base: string): string {
    let name = base
    for (let i = 2; this.#used.has(name.toLowerCase()); i++) name = `${base}_${i}`
    this.#used.add(name.toLowerCase())
    return name
  }
}

function words(sql: string): string[] {
  return sql
    .normalize('NFKD')
    .replace(/[^\x00-\x7f]/g, '')
    .split(/[^A-Za-z0-9]+/)
    .filter((w) => w.length > 0)
}

/**
 * `camelCase` identifier of an SQL name; `x` prefix when it would start with a
 * digit or be empty.
 *
 * @internal
 * @example
 * ```ts
 * camelName('account_id') // 'accountId'
 * ```
 */
export function camelName(sql: string): string {
  const ws = words(sql)
  const name = ws
    .map((w, i) =>
      i === 0 ? w.charAt(0).toLowerCase() + w.slice(1) : w.charAt(0).toUpperCase() + w.slice(1),
    )
    .join('')
  return /^[A-Za-z]/.test(name) ? name : `x${name}`
}

/**
 * `PascalCase` identifier of an SQL name.
 *
 * @internal
 * @example
 * ```ts
 * pascalName('line_items') // 'LineItems'
 * ```
 */
export function pascalName(sql: string): string {
  const name = camelName(sql)
  return name.charAt(0).toUpperCase() + name.slice(1)
}

/**
 * A double-quoted string literal valid in both TypeScript and Prisma schema files.
 *
 * @internal
 */
export function quoted(text: string): string {
  return JSON.stringify(text)
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029')
}
