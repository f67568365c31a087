/**
 * `rowtenancy/schema`: generate the shared, tenant-aware tables from one
 * tenant's schema (the library behind `rowtenancy schema generate`).
 *
 * @module
 */
export {
  type AppliedSchema,
  applyTenantSchema,
  type CheckDef,
  type ColumnDef,
  type DomainDef,
  type EmitOptions,
  type EmitTarget,
  type EnumDef,
  type ExclusionDef,
  emitDrizzleSchema,
  emitOrmCode,
  emitPrismaModels,
  type ForeignKeyAction,
  type ForeignKeyDef,
  type GeneratedSchema,
  type GenerateOptions,
  generateTenantSchema,
  type IndexDef,
  introspectTemplate,
  type KeyDef,
  type PlanOptions,
  planTenantSchema,
  type RenderOptions,
  renderForeignKey,
  renderTable,
  renderTenantSchema,
  type SequenceDef,
  type TableDef,
  type TemplateSchema,
  type TenantSchemaPlan,
  type TenantSchemaPlanOptions,
} from '../schema/generate/index.js'
