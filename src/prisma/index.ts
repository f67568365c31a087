export * from './all-objects-extension.js'
export { tenantPrismaExtension } from './batch-isolation.js'
export * from './tenant-adapter.js'
