export * from './capture-sql.js'
export * from './cutover.js'
export * from './rollback-online.js'
export * from './run-online.js'
