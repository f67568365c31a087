export * from './findings.js'
export * from './run-doctor.js'
