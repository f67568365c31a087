export * from './catalog.js'
export * from './distribute.js'
export * from './operate.js'
export * from './plan.js'
