export * from './tenant-plugin.js'
