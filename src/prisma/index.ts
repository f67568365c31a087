export * from './all-objects-extension.js'
export * from './batch-isolation.js'
export * from './tenant-adapter.js'
