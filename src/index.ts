export * from './context/index.js'
export * from './errors/index.js'
export { quoteIdent, quoteLiteral, quoteQualified } from './schema/identifiers.js'
export * from './tenants/index.js'
