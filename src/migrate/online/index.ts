export { CHANGELOG_TABLE } from './capture-sql.js'
export type { CutoverResult } from './cutover.js'
export { type OnlineRollbackOptions, rollbackOnline } from './rollback-online.js'
export {
  type FenceStats,
  fenceStats,
  migrateOnline,
  type OnlineEvent,
  type OnlineOptions,
  type OnlinePhase,
  type OnlineReport,
  type OnlineTenantReport,
} from './run-online.js'
