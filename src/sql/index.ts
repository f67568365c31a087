export * from './defaults.js'
export * from './queryable.js'
export * from './quote.js'
export * from './unavailable.js'
