import { ConfigError } from '../errors/index.js'
import { RLS_SETTING } from '../schema/rls-policy.js'
import { inTransaction, type Queryable, quoteIdent, quoteQualified } from '../sql/index.js'

/**
 * Where fan-out runs record finished tenants: `rowtenancy_runs` by default,
 * or `schema.table`.
 */
export interface RunLedgerOptions {
  readonly table?: string | undefined
  /** A role that runs fan-out work (the runtime role) and so writes the ledger. */
  readonly grantTo?: string | undefined
}

/**
 * The quoted name of the ledger table.
 *
 * @internal
 */
export function ledgerTable(name = 'rowtenancy_runs'): string {
  const parts = typeof name === 'string' ? name.split('.') : []
  if (parts.length < 1 || parts.length > 2 || parts.some((p) => p.length === 0)) {
    throw new ConfigError(
      `Invalid ledger table ${JSON.stringify(name)}: write "table" or "schema.table".`,
    )
  }
  return parts.length === 2 ? quoteQualified(parts[0], parts[1]!) : quoteIdent(parts[0]!)
}

/**
 * The ledger's DDL: one row per (run, tenant) that finished (`done`) or last
 * failed (`failed`), so a rerun of the same run skips what is done. Row level
 * security shows a role other than the owner only the rows of the tenant its
 * transaction is bound to (a tenant's code claims its own row; a failure text of
 * another tenant stays out of reach), and none unbound; the owner reads and
 * writes the rest (the fan-out's coordinator, on the audit pool).
 *
 * @example
 * ```ts
 * runLedgerDdl()[0] // 'create table if not exists "rowtenancy_runs" (run text not null, ...)'
 * ```
 */
export function runLedgerDdl(options: RunLedgerOptions = {}): string[] {
  const table = ledgerTable(options.table)
  const ddl = [
    `create table if not exists ${table} (
  run text not null,
  tenant_id text not null,
  state text not null check (state in ('done', 'failed')),
  attempts integer not null default 1,
  error text,
  finished_at timestamptz not null default now(),
  primary key (run, tenant_id)
)`,
    `alter table ${table} enable row level security`,
    `drop policy if exists rowtenancy_run_tenant on ${table}`,
    `create policy rowtenancy_run_tenant on ${table}
  using (tenant_id = nullif(pg_catalog.current_setting('${RLS_SETTING}', true), ''))
  with check (tenant_id = nullif(pg_catalog.current_setting('${RLS_SETTING}', true), ''))`,
  ]
  if (options.grantTo !== undefined) {
    ddl.push(`grant select, insert, update on ${table} to ${quoteIdent(options.grantTo)}`)
  }
  return ddl
}

/**
 * Creates the fan-out ledger (idempotent), in one transaction.
 *
 * @example
 * ```ts
 * await installRunLedger(adminPool, { grantTo: 'app_runtime' })
 * ```
 */
export async function installRunLedger(
  db: Queryable,
  options: RunLedgerOptions = {},
): Promise<void> {
  const ddl = runLedgerDdl(options)
  await inTransaction(db, async (tx) => {
    for (const statement of ddl) await tx.query(statement)
  })
}
