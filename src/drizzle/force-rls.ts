import { parseTableRef, type TableRef } from '../schema/rls-policy.js'
import { renderTable } from '../schema/rls-render.js'

/**
 * `ALTER TABLE ... FORCE ROW LEVEL SECURITY` for `table`: the statement
 * drizzle-kit does not generate, for a custom migration.
 *
 * @example
 * ```ts
 * forceRlsSql('accounts') // 'alter table "accounts" force row level security'
 * ```
 */
export function forceRlsSql(table: string | TableRef): string {
  return `alter table ${renderTable(parseTableRef(table))} force row level security`
}
