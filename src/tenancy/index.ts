export * from './create-tenancy.js'
export * from './options.js'
export * from './orm-pools.js'
export * from './placement.js'
