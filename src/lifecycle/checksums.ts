import { tenantScoped } from '../migrate/checks.js'
import { type SqlContext, targetChecksumStatement } from '../migrate/copy-sql.js'
import type { TablePlan } from '../migrate/plan.js'
import { CHECKSUM_SETTINGS } from '../migrate/row-checksum.js'
import type { Queryable } from '../sql/queryable.js'
import type { LifecycleTable, TenantLayout } from './tables.js'

/**
 * Row count and checksum of one tenant's rows in one table.
 */
export interface TableChecksum {
  readonly table: string
  readonly rows: number
  readonly checksum: string
}

/**
 * Pins, for the rest of the caller's transaction, every setting that changes
 * how a value prints as text (time zone, date and interval style, float digits,
 * bytea output), so the COPY text and the `row(...)::text` checksums are the same
 * on any server and any session.
 *
 * @example
 * ```ts
 * await pinTextSettings(client) // inside BEGIN ... COMMIT
 * ```
 * @internal
 */
export async function pinTextSettings(db: Queryable): Promise<void> {
  await db.query(`${CHECKSUM_SETTINGS}; set local client_encoding = 'UTF8'`)
}

/**
 * Binds the tenant for the rest of the caller's transaction
 * (`set_config('rowtenancy.tenant_id', $1, true)`), so forced row level security
 * limits every statement of a lifecycle operation to that tenant as well.
 *
 * @example
 * ```ts
 * await bindTenant(client, '7')
 * ```
 * @internal
 */
export async function bindTenant(db: Queryable, tenantId: string): Promise<void> {
  await db.query("select set_config('rowtenancy.tenant_id', $1, true)", [tenantId])
}

/** @internal the migration's SQL context for one tenant of a layout */
export function lifecycleContext(layout: TenantLayout, tenantId: string): SqlContext {
  return {
    targetSchema: layout.schema,
    sourceSchema: layout.schema,
    idType: layout.idType,
    tenantId,
    tenantColumn: layout.tenantColumn,
    tenantsSchema: layout.tenantsSchema,
  }
}

/** @internal a table in the shape the migration's checks take */
export function asTablePlan(t: LifecycleTable): TablePlan {
  return {
    name: t.name,
    source: t.info,
    target: t.info,
    columns: t.checksumColumns,
    insertColumns: t.checksumColumns,
    casts: new Map(),
    overriding: false,
    remapColumns: new Map(),
  }
}

/**
 * Counts and checksums one tenant's rows in every table with the statement
 * `rowtenancy verify` uses (`count(*)`, `sum(hashtextextended(row(cols)::text, 0))`
 * over the tenant's rows; the tenant column left out, so a copy under another id
 * has the same checksum). Call it inside a transaction after {@link pinTextSettings}.
 *
 * @example
 * ```ts
 * await tenantChecksums(client, layout, '7', tables) // [{ table: 'book', rows: 3, checksum: '...' }]
 * ```
 */
export async function tenantChecksums(
  db: Queryable,
  layout: TenantLayout,
  tenantId: string,
  tables: readonly LifecycleTable[],
): Promise<TableChecksum[]> {
  const ctx = lifecycleContext(layout, tenantId)
  return tenantScoped(db, async () => {
    const out: TableChecksum[] = []
    for (const t of tables) {
      const s = targetChecksumStatement(ctx, asTablePlan(t), 'text')
      const row = (await db.query(s.text, s.values)).rows[0]
      out.push({ table: t.name, rows: Number(row.n), checksum: String(row.sum) })
    }
    return out
  })
}
