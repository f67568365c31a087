import type {
  CompositeTypeDef,
  DomainDef,
  EnumDef,
  SequenceDef,
  TableDef,
} from '../../sql/catalog/model.js'

/**
 * The tenant-aware target: every table with the tenant column first and every
 * key, index and tenant-table foreign key led by it.
 *
 * @example
 * ```ts
 * const plan: TenantSchemaPlan = planTenantSchema(template, { targetSchema: 'public' })
 * plan.tables[0]?.columns[0]?.name // 'tenant_id'
 * ```
 */
export interface TenantSchemaPlan {
  readonly templateSchema: string
  readonly targetSchema: string
  readonly tenantColumn: string
  readonly tenantIdType: 'bigint' | 'integer' | 'uuid' | 'text'
  readonly tenantsTable: { readonly schema: string; readonly table: string }
  readonly tables: readonly TableDef[]
  readonly enums: readonly EnumDef[]
  readonly domains: readonly DomainDef[]
  /** Composite and range types, created after the enums and domains. */
  readonly compositeTypes?: readonly CompositeTypeDef[]
  readonly sequences: readonly SequenceDef[]
  /** Foreign keys made `DEFERRABLE INITIALLY DEFERRED` because they close a cycle. */
  readonly deferredForeignKeys: readonly string[]
  readonly notes: readonly string[]
}
