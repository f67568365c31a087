import { isTenantPredicate } from '../schema/rls-apply.js'
import { RLS_SETTING } from '../schema/rls-policy.js'
import type { TableFacts } from '../sql/catalog/index.js'
import type { Queryable } from '../sql/queryable.js'
import { type Finding, finding } from './findings.js'

const ENABLE_FIX = 'rowtenancy rls enable'

/**
 * RLS on each tenant-aware table: enabled, forced, a tenant policy for USING and
 * WITH CHECK, and no other permissive policy (permissive policies are ORed, so
 * one more widens what every role sees).
 *
 * @internal
 * @example
 * ```ts
 * const findings = await checkRls(pool, tables, 'tenant_id')
 * ```
 */
export async function checkRls(
  db: Queryable,
  tables: readonly TableFacts[],
  tenantColumn: string,
): Promise<Finding[]> {
  const { rows } = (await db.query(
    `select polrelid::int as oid, polname as name, polpermissive as permissive, polcmd as cmd,
            pg_get_expr(polqual, polrelid) as using, pg_get_expr(polwithcheck, polrelid) as check
       from pg_policy where polrelid = any($1::oid[]) order by polname`,
    [tables.map((t) => t.oid)],
  )) as { rows: PolicyRow[] }
  return tables
    .filter((t) => t.tenantAttnum !== null) // else reported as TENANT_COLUMN_MISSING
    .flatMap((t) => [
      ...rlsStateFindings(t),
      ...policyFindings(
        t,
        rows.filter((p) => p.oid === t.oid),
        tenantColumn,
      ),
    ])
}

interface PolicyRow {
  oid: number
  name: string
  permissive: boolean
  cmd: string
  using: string | null
  check: string | null
}

/** Row level security enabled and forced. */
function rlsStateFindings(t: TableFacts): Finding[] {
  const out: Finding[] = []
  if (!t.rlsEnabled) {
    out.push(
      finding(
        'RLS_NOT_ENABLED',
        t.qualified,
        'Row level security is not enabled: any SQL sees every tenant.',
        `${ENABLE_FIX} (or: alter table ${t.quoted} enable row level security)`,
      ),
    )
  }
  if (!t.rlsForced) {
    out.push(
      finding(
        'RLS_NOT_FORCED',
        t.qualified,
        "Row level security is not forced: the table's owner bypasses the policy.",
        `${ENABLE_FIX} (or: alter table ${t.quoted} force row level security)`,
      ),
    )
  }
  return out
}

/** The tenant policy present for all commands; no permissive policy beside it that widens it. */
function policyFindings(
  t: TableFacts,
  policies: readonly PolicyRow[],
  tenantColumn: string,
): Finding[] {
  const isTenant = (p: PolicyRow) =>
    // either form: the plain predicate, or the sealed one (rls enable --sealed)
    [false, true].some(
      (sealed) =>
        isTenantPredicate(p.using, tenantColumn, sealed) &&
        (p.cmd === 'r' ||
          p.cmd === 'd' ||
          isTenantPredicate(p.check ?? p.using, tenantColumn, sealed)),
    )
  const out: Finding[] = []
  if (!policies.some((p) => p.permissive && p.cmd === '*' && isTenant(p))) {
    out.push(
      finding(
        'RLS_POLICY_MISSING',
        t.qualified,
        `No policy limits all commands to the bound tenant (${tenantColumn} = current_setting('${RLS_SETTING}')) for USING and WITH CHECK.`,
        ENABLE_FIX,
      ),
    )
  }
  for (const p of policies.filter((p) => p.permissive && !isTenant(p))) {
    out.push(
      finding(
        'RLS_POLICY_PERMISSIVE',
        `${t.qualified}.${p.name}`,
        'A permissive policy that is not the tenant predicate: permissive policies are ORed, so it widens what every role sees across tenants.',
        `Drop it (drop policy "${p.name}" on ${t.quoted}) or make it restrictive (create policy ... as restrictive).`,
      ),
    )
  }
  return out
}

/**
 * The tenant column of each table: present, NOT NULL, of the tenant id type.
 *
 * @internal
 * @example
 * ```ts
 * checkTenantColumns(tables, 'tenant_id', 'bigint')
 * ```
 */
export function checkTenantColumns(
  tables: readonly TableFacts[],
  tenantColumn: string,
  tenantIdType: string,
): Finding[] {
  const out: Finding[] = []
  for (const t of tables) {
    const col = `${t.qualified}.${tenantColumn}`
    if (t.tenantAttnum === null) {
      out.push(
        finding(
          'TENANT_COLUMN_MISSING',
          t.qualified,
          `The table is listed as tenant-aware but has no ${tenantColumn} column.`,
          `alter table ${t.quoted} add column ${tenantColumn} ${tenantIdType} not null references tenants (id), or remove it from tables.`,
        ),
      )
      continue
    }
    if (!t.tenantNotNull) {
      out.push(
        finding(
          'TENANT_COLUMN_NULLABLE',
          col,
          'The tenant column allows NULL: such rows belong to no tenant and escape every policy.',
          `Assign the orphans, then: alter table ${t.quoted} alter column ${tenantColumn} set not null`,
        ),
      )
    }
    if (t.tenantType !== tenantIdType) {
      out.push(
        finding(
          'TENANT_COLUMN_TYPE',
          col,
          `The tenant column is ${t.tenantType}, but tenant ids are ${tenantIdType}: the policy casts the setting to ${tenantIdType} and keys and foreign keys do not line up.`,
          `alter table ${t.quoted} alter column ${tenantColumn} type ${tenantIdType}`,
        ),
      )
    }
  }
  return out
}

/**
 * The tenant column compares by its collation in the policy, the plugin's filter and
 * every key: under a nondeterministic collation (case- or accent-insensitive) two
 * tenant ids that differ only by case are equal, and each tenant sees the other's rows.
 *
 * @internal
 * @example
 * ```ts
 * const findings = await checkTenantCollations(pool, tables, 'tenant_id')
 * ```
 */
export async function checkTenantCollations(
  db: Queryable,
  tables: readonly TableFacts[],
  tenantColumn: string,
): Promise<Finding[]> {
  const { rows } = await db.query(
    `select a.attrelid::int as oid, co.collname as collation
       from pg_attribute a
       join pg_collation co on co.oid = a.attcollation
      where a.attrelid = any($1::oid[]) and a.attname = $2 and not co.collisdeterministic`,
    [tables.map((t) => t.oid), tenantColumn],
  )
  return (rows as { oid: number; collation: string }[]).flatMap((r) => {
    const t = tables.find((table) => table.oid === r.oid)
    if (t === undefined) return []
    return [
      finding(
        'TENANT_COLUMN_COLLATION',
        `${t.qualified}.${tenantColumn}`,
        `The tenant column has the nondeterministic collation ${r.collation}: tenant ids that differ only ` +
          "by case (or accents) compare equal, so each of those tenants sees the other's rows.",
        `alter table ${t.quoted} alter column ${tenantColumn} type text collate "C"`,
      ),
    ]
  })
}
