import { quoteIdent, quoteLiteral, quoteQualified } from '../sql/quote.js'
import {
  parseTableRef,
  type RlsPolicy,
  type TableRef,
  type TenantPolicyOptions,
  type TenantPredicate,
  tenantPolicy,
} from './rls-policy.js'
import { SEALED_TENANT_FUNCTION } from './rls-sealed.js'

/**
 * Renders a table reference, quoted.
 *
 * @example
 * ```ts
 * renderTable({ schema: 'app', name: 'accounts' }) // '"app"."accounts"'
 * ```
 */
export function renderTable(table: TableRef): string {
  return quoteQualified(table.schema, table.name)
}

/**
 * Renders the tenant predicate. No `(select ...)` wrapper: `current_setting` is
 * STABLE, so the predicate is an index condition as it stands, and Citus rejects
 * policies with a sub-select. The sealed predicate has one: its function checks an
 * HMAC, which must run once per statement (it is not for Citus anyway).
 *
 * @example
 * ```ts
 * renderPredicate(tenantPolicy('accounts').using)
 * // `"tenant_id" = nullif(current_setting('rowtenancy.tenant_id', true), '')::bigint`
 * ```
 */
export function renderPredicate(p: TenantPredicate): string {
  if (p.kind === 'tenant-equals-sealed') {
    // `(select ...)`: an InitPlan, so the HMAC is checked once per statement, not per row.
    return `${quoteIdent(p.column)} = nullif((select ${SEALED_TENANT_FUNCTION}()), '')::${p.type}`
  }
  return `${quoteIdent(p.column)} = nullif(current_setting(${quoteLiteral(p.setting)}, true), '')::${p.type}`
}

/**
 * Renders a policy as one `CREATE POLICY` statement.
 *
 * @example
 * ```ts
 * renderPolicy(tenantPolicy('accounts'))
 * // 'create policy "rowtenancy_tenant_isolation" on "accounts" as permissive for all to public using (...) with check (...)'
 * ```
 */
export function renderPolicy(policy: RlsPolicy): string {
  return (
    `create policy ${quoteIdent(policy.name)} on ${renderTable(policy.table)} ` +
    `as ${policy.as} for ${policy.for} to ${policy.to} ` +
    `using (${renderPredicate(policy.using)}) with check (${renderPredicate(policy.withCheck)})`
  )
}

/**
 * The statements that put one table under tenant isolation, one statement per
 * element (Citus refuses several commands in one string), idempotent as a group:
 * ENABLE and FORCE ROW LEVEL SECURITY, drop the policy if present, create it.
 *
 * @example
 * ```ts
 * renderRlsEnable(tenantPolicy('accounts'))
 * // [
 * //   'alter table "accounts" enable row level security',
 * //   'alter table "accounts" force row level security',
 * //   'drop policy if exists "rowtenancy_tenant_isolation" on "accounts"',
 * //   'create policy "rowtenancy_tenant_isolation" on "accounts" ...',
 * // ]
 * ```
 */
export function renderRlsEnable(policy: RlsPolicy): string[] {
  const t = renderTable(policy.table)
  return [
    `alter table ${t} enable row level security`,
    `alter table ${t} force row level security`,
    `drop policy if exists ${quoteIdent(policy.name)} on ${t}`,
    renderPolicy(policy),
  ]
}

/**
 * The statements that take a table out of tenant isolation (the inverse of
 * {@link renderRlsEnable}).
 *
 * @example
 * ```ts
 * renderRlsDisable(tenantPolicy('accounts'))
 * // ['drop policy if exists ... on "accounts"', 'alter table "accounts" no force row level security', 'alter table "accounts" disable row level security']
 * ```
 */
export function renderRlsDisable(policy: RlsPolicy): string[] {
  const t = renderTable(policy.table)
  return [
    `drop policy if exists ${quoteIdent(policy.name)} on ${t}`,
    `alter table ${t} no force row level security`,
    `alter table ${t} disable row level security`,
  ]
}

/**
 * The whole RLS DDL for a set of tenant-aware tables, as an array of single
 * statements, for users who keep DDL in their own migration tool.
 *
 * @example
 * ```ts
 * for (const statement of rlsSql(['accounts', 'transactions'])) await sql.raw(statement).execute(db)
 * ```
 */
export function rlsSql(
  tables: readonly (string | TableRef)[],
  options: TenantPolicyOptions = {},
): string[] {
  return tables.flatMap((table) => renderRlsEnable(tenantPolicy(parseTableRef(table), options)))
}
