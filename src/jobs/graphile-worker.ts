import { InvalidInputError } from '../errors/index.js'
import type { JobInfo, JobTenancy } from './job-tenancy.js'

/**
 * Anything with graphile-worker's `addJob` (WorkerUtils, a task's helpers).
 *
 * @example
 * ```ts
 * const utils: AddJobLike = await makeWorkerUtils({ connectionString })
 * ```
 */
export interface AddJobLike {
  addJob(identifier: string, payload?: unknown, spec?: Record<string, unknown>): Promise<any>
}

/**
 * Options of {@link tenantAddJob}.
 *
 * @example
 * ```ts
 * const options: GraphileTenantOptions = { tenantQueue: true }
 * ```
 */
export interface GraphileTenantOptions {
  /**
   * A per-tenant concurrency limit through graphile-worker's named queues, which
   * run one job at a time each. `true`: every job of a tenant goes to the queue
   * `tenant:<id>` (or `<queueName>:<id>`), so a tenant holds at most one worker
   * slot whatever its backlog. A number `n`: its jobs are spread over `n` such
   * queues (`tenant:<id>:<k>`), so at most `n` run at once.
   */
  readonly tenantQueue?: boolean | number | undefined
}

/**
 * graphile-worker's `addJob` with the current tenant sealed into the payload.
 *
 * @example
 * ```ts
 * const addJob = tenantAddJob(workerUtils, jobs, { tenantQueue: true })
 * await runWithTenant('7', () => addJob('send-invoice', { invoiceId: 12 }))
 * ```
 */
export function tenantAddJob(
  target: AddJobLike,
  jobs: JobTenancy,
  options: GraphileTenantOptions = {},
): (identifier: string, payload?: unknown, spec?: Record<string, unknown>) => Promise<any> {
  const limit = options.tenantQueue === true ? 1 : options.tenantQueue || 0
  if (!Number.isSafeInteger(limit) || limit < 0 || limit > 64) {
    throw new InvalidInputError(
      `tenantQueue must be true, false or a number from 1 to 64, not ${String(limit)}.`,
    )
  }
  return async function addTenantJob(identifier, payload, spec = {}) {
    const data = jobs.seal(identifier, payload)
    const tenant = data.rowtenancy.tenant
    let finalSpec = spec
    if (limit > 0 && tenant !== null) {
      const base = `${(spec.queueName as string | undefined) ?? 'tenant'}:${tenant}`
      const queueName = limit === 1 ? base : `${base}:${Math.floor(Math.random() * limit)}`
      finalSpec = { ...spec, queueName }
    }
    return target.addJob(identifier, data, finalSpec)
  }
}

/**
 * A graphile-worker task's handler: payload, job info, and the task helpers.
 *
 * @example
 * ```ts
 * const task: TenantTask = async (payload, info, helpers) => helpers.logger.info(`tenant ${info.tenantId}`)
 * ```
 */
export type TenantTask<P = any> = (
  payload: P,
  info: JobInfo,
  helpers: any,
) => Promise<unknown> | unknown

/**
 * Turns `{ identifier: handler }` into graphile-worker's task list, each task
 * running inside its job's tenant; refused jobs throw (graphile-worker retries
 * them up to `max_attempts`, then keeps them as permanently failed).
 *
 * @example
 * ```ts
 * await run({ connectionString, taskList: tenantTaskList(jobs, { 'send-invoice': sendInvoice }) })
 * ```
 */
export function tenantTaskList(
  jobs: JobTenancy,
  tasks: Readonly<Record<string, TenantTask>>,
): Record<string, (payload: unknown, helpers: any) => Promise<void>> {
  const list: Record<string, (payload: unknown, helpers: any) => Promise<void>> = {}
  for (const [identifier, handler] of Object.entries(tasks)) {
    jobs.rule(identifier)
    list[identifier] = async (payload, helpers) => {
      const job = helpers.job
      await jobs.process(
        identifier,
        payload,
        { id: String(job.id), attempt: Number(job.attempts) },
        (p, info) => handler(p, info, helpers),
        async (delayMs) => {
          // A copy runs later (same envelope, same named queue); this one completes.
          const queueName = job.job_queue_id == null ? null : await helpers.getQueueName()
          await helpers.addJob(identifier, payload, {
            runAt: new Date(Date.now() + delayMs),
            maxAttempts: job.max_attempts,
            priority: job.priority,
            ...(queueName ? { queueName } : {}),
          })
        },
      )
    }
  }
  return list
}
