export type { DoctorReport, Finding, FindingCode } from './findings.js'
export { type DoctorOptions, runDoctor } from './run-doctor.js'
