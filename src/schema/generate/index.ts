export { introspectTemplate } from '../../sql/catalog/index.js'
export type {
  CheckDef,
  ColumnDef,
  DomainDef,
  EnumDef,
  ExclusionDef,
  ForeignKeyAction,
  ForeignKeyDef,
  IndexDef,
  KeyDef,
  SequenceDef,
  TableDef,
  TemplateSchema,
} from '../../sql/catalog/model.js'
export { type EmitTarget, emitOrmCode, parseEmitTargets } from './emit.js'
export { type EmitOptions, emitDrizzleSchema } from './emit-drizzle.js'
export { emitPrismaModels } from './emit-prisma.js'
export {
  type AppliedSchema,
  applyTenantSchema,
  type GeneratedSchema,
  type GenerateOptions,
  generateTenantSchema,
} from './generate.js'
export type { TenantSchemaPlan } from './model.js'
export { type PlanOptions, planTenantSchema, type TenantSchemaPlanOptions } from './plan.js'
export { type RenderOptions, renderForeignKey, renderTable, renderTenantSchema } from './render.js'
