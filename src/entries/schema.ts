/**
 * `rowtenancy/schema`: generate the shared, tenant-aware tables from one
 * tenant's schema (the library behind `rowtenancy schema generate`).
 *
 * @module
 */

export {
  type AppliedSchema,
  applyTenantSchema,
  type EmitOptions,
  type EmitTarget,
  emitDrizzleSchema,
  emitOrmCode,
  emitPrismaModels,
  type GeneratedSchema,
  type GenerateOptions,
  generateTenantSchema,
  type PlanOptions,
  planTenantSchema,
  type RenderOptions,
  renderForeignKey,
  renderTable,
  renderTenantSchema,
  type TenantSchemaPlan,
  type TenantSchemaPlanOptions,
} from '../schema/generate/index.js'
export {
  type CheckDef,
  type ColumnDef,
  type DomainDef,
  type EnumDef,
  type ExclusionDef,
  type ForeignKeyAction,
  type ForeignKeyDef,
  type IndexDef,
  introspectTemplate,
  type KeyDef,
  type SequenceDef,
  type TableDef,
  type TemplateSchema,
} from '../sql/catalog/index.js'
