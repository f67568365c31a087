export * from './config/index.js'
export * from './context/index.js'
export * from './errors/index.js'
export { quoteIdent, quoteLiteral, quoteQualified } from './schema/identifiers.js'
export * from './tenants/index.js'
export {
  createTenancy,
  type ResolvedTenancyOptions,
  type Tenancy,
  type TenancyAuditOptions,
  type TenancyOptions,
  type TenancyPool,
} from './tenancy/index.js'
