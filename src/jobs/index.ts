export {
  type BullQueueLike,
  type TenantBullQueue,
  tenantProcessor,
  tenantQueue,
} from './bullmq.js'
export { ENVELOPE_KEY, type JobEnvelope, type JobMeta } from './envelope.js'
export {
  enqueueForEachTenant,
  type FanOutContext,
  type FanOutProgress,
  type FanOutSummary,
  type ForEachTenantOptions,
  forEachTenant,
} from './fan-out.js'
export {
  type AddJobLike,
  type GraphileTenantOptions,
  type TenantTask,
  type TenantTaskListOptions,
  tenantAddJob,
  tenantTaskList,
} from './graphile-worker.js'
export type { JobAuditOptions } from './job-audit.js'
export { JobRejectedError, type JobRejectReason } from './job-errors.js'
export {
  createJobTenancy,
  type JobHandler,
  type JobInfo,
  type JobTenancy,
  type JobTenancyOptions,
  type QueueRule,
  type SuspendedPolicy,
} from './job-tenancy.js'
export {
  type PgBossJob,
  type PgBossLike,
  type TenantPgBoss,
  type TenantSendOptions,
  tenantPgBoss,
} from './pg-boss.js'
export { installRunLedger, type RunLedgerOptions, runLedgerDdl } from './run-ledger.js'
