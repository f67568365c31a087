export * from './audit-event.js'
export * from './audit-log-table.js'
export * from './audit-writer.js'
export * from './fingerprint.js'
