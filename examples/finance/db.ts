import type { ColumnType, Generated } from 'kysely'

/** A bigint / numeric column: pg returns it as a string, and accepts a string or number. */
type Big = ColumnType<string, string | number | bigint, string | number | bigint>
/** A bigint id the database assigns (identity). */
type BigId = ColumnType<string, string | number | undefined, never>
/** The tenant column: the TenantPlugin stamps it on insert, so it is optional there. */
type TenantColumn = ColumnType<string, string | number | undefined, never>

/**
 * The finance example's database, as Kysely sees it: the shared tenant-aware
 * tables that `rowtenancy schema generate --from-schema tenant_<slug>` made from
 * the legacy schema, plus rowtenancy's `tenants` table and audit log.
 *
 * @example
 * ```ts
 * const db = tenancy.kysely<FinanceDB>()
 * await db.selectFrom('finance_account').select(['id', 'name']).execute()
 * ```
 */
export interface FinanceDB {
  tenants: {
    id: BigId
    slug: string
    name: string
    status: 'active' | 'suspended'
    created_at: ColumnType<Date, never, never>
  }
  auth_user: {
    tenant_id: TenantColumn
    id: Generated<number>
    username: string
    email: string
    is_active: Generated<boolean>
  }
  auth_membership: {
    tenant_id: TenantColumn
    id: BigId
    user_id: number
    role: string
  }
  finance_account: {
    tenant_id: TenantColumn
    id: BigId
    name: string
    currency: string
    kind: string
    owner_id: number | null
    opened_at: Generated<Date>
    is_closed: Generated<boolean>
  }
  finance_transaction: {
    tenant_id: TenantColumn
    id: BigId
    account_id: Big
    amount: Big
    posted_at: ColumnType<Date, Date | string, Date | string>
    description: string
    created_by_id: number | null
  }
  audit_log: {
    id: BigId
    at: Generated<Date>
    source: string
    reason: string
    actor: string | null
    statement: string
  }
}

/**
 * The tenant-aware tables of the finance example (every other table is shared).
 *
 * @example
 * ```ts
 * createTenancy({ pool, tables: FINANCE_TABLES })
 * ```
 */
export const FINANCE_TABLES: readonly string[] = Object.freeze([
  'auth_user',
  'auth_membership',
  'finance_account',
  'finance_transaction',
])
