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
export { introspectTemplate } from './introspect.js'
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
  TenantSchemaPlan,
} from './model.js'
export { type PlanOptions, planTenantSchema } from './plan.js'
export { type RenderOptions, renderForeignKey, renderTable, renderTenantSchema } from './render.js'
