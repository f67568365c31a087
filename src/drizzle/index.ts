export * from './force-rls.js'
export * from './table-helpers.js'
export * from './tenant-drizzle.js'
