export { DEFAULTS } from './defaults.js'
export { type ConnectableQueryable, inTransaction, type Queryable } from './queryable.js'
export { quoteIdent, quoteLiteral, quoteQualified } from './quote.js'
export { asUnavailable, guardPoolErrors, unavailableReason } from './unavailable.js'
