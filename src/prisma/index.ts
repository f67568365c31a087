export * from './all-objects-extension.js'
export * from './tenant-adapter.js'
