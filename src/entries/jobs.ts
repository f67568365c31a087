/**
 * `rowtenancy/jobs`: tenant-carrying background jobs for pg-boss 10,
 * graphile-worker 0.17 and BullMQ 5/6 (the job core, one adapter per queue),
 * and the audited, resumable fan-out over every tenant.
 *
 * @module
 */
export {
  type BullFlowJob,
  type BullFlowProducerLike,
  type BullQueueLike,
  type TenantBullFlowProducer,
  type TenantBullQueue,
  tenantFlowProducer,
  tenantProcessor,
  tenantQueue,
} from '../jobs/bullmq.js'
export { ENVELOPE_KEY, type JobEnvelope, type JobMeta } from '../jobs/envelope.js'
export {
  enqueueForEachTenant,
  type FanOutContext,
  type FanOutProgress,
  type FanOutSummary,
  type ForEachTenantOptions,
  forEachTenant,
} from '../jobs/fan-out.js'
export {
  type AddJobLike,
  type AddJobsLike,
  type CronItemLike,
  type GraphileTenantOptions,
  type TenantJobSpec,
  type TenantTask,
  type TenantTaskListOptions,
  tenantAddJob,
  tenantAddJobs,
  tenantCronItems,
  tenantTaskList,
} from '../jobs/graphile-worker.js'
export type { JobAuditOptions } from '../jobs/job-audit.js'
export { JobRejectedError, type JobRejectReason } from '../jobs/job-errors.js'
export {
  createJobTenancy,
  type JobHandler,
  type JobInfo,
  type JobTenancy,
  type JobTenancyOptions,
  type QueueRule,
  type ResolvedQueueRule,
  type SuspendedPolicy,
} from '../jobs/job-tenancy.js'
export {
  type PgBossJob,
  type PgBossLike,
  type TenantJobInsert,
  type TenantPgBoss,
  type TenantSendOptions,
  tenantPgBoss,
} from '../jobs/pg-boss.js'
export { installRunLedger, type RunLedgerOptions, runLedgerDdl } from '../jobs/run-ledger.js'
