export * from './context/index.js'
export * from './errors/index.js'
