export * from './config-keys.js'
export * from './load-config.js'
