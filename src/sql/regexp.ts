/**
 * `text` with every regular-expression metacharacter escaped, to match it literally inside a
 * pattern (a table name, a setting name in a printed SQL expression).
 *
 * @internal
 * @example
 * ```ts
 * new RegExp(`^${escapeRegExp('rowtenancy.tenant_id')}$`).test('rowtenancyXtenant_id') // false
 * ```
 */
export function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}
