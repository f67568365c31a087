import { InvalidInputError } from '../errors/index.js'
import { asUnavailable } from '../sql/unavailable.js'
import { ENVELOPE_KEY } from './envelope.js'
import { refuseBatchMerge, settleBatch } from './graphile-batch.js'
import { addHeldCopy } from './graphile-held-copy.js'
import { JobRejectedError } from './job-errors.js'
import { jobOptions, listOnce, tenantQueueName, withTenantKey } from './job-keys.js'
import { notRun } from './job-run.js'
import type { JobInfo, JobTenancy } from './job-tenancy.js'
import { holdOption, holdWhileUnavailable } from './unavailable-hold.js'

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
  /** WorkerUtils have it; needed for `fair`. */
  withPgClient?: <T>(
    fn: (client: {
      query(text: string, values?: unknown[]): Promise<{ rows: any[] }>
    }) => Promise<T>,
  ) => Promise<T>
}

/**
 * Options of {@link tenantAddJob}.
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
  /**
   * Fair scheduling without serializing: the job's priority is raised (run
   * later) by the number of jobs of the same task and tenant still waiting, so
   * workers take tenants round-robin. One count query per job; needs
   * `withPgClient` (WorkerUtils).
   */
  readonly fair?: boolean | undefined
  /** graphile-worker's schema, for `fair`; `graphile_worker` by default. */
  readonly schema?: string | undefined
}

/**
 * graphile-worker's `addJob` with the current tenant sealed into the payload.
 * A tenant job's `jobKey` is the tenant's own (stored as `<tenant>/<jobKey>`):
 * graphile-worker keeps one job per key across tasks and tenants, so an
 * unscoped key would let one tenant replace another's job. Its `queueName`
 * is the tenant's own named queue for the same reason (`<queueName>:<tenant>`,
 * both URI-encoded), with or without `tenantQueue`.
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
  target = rawHelpers(target)
  const limit = queueLimit(options)
  const schema = workerSchema(options.schema)
  if (options.fair && typeof target.withPgClient !== 'function') {
    throw new InvalidInputError('fair needs WorkerUtils (with withPgClient) as the target.')
  }
  const waiting =
    `select count(*)::int as n from ${schema}._private_jobs j join ${schema}._private_tasks t on t.id = j.task_id ` +
    `where t.identifier = $1 and j.locked_at is null and j.attempts < j.max_attempts ` +
    `and j.payload->'rowtenancy'->>'tenant' = $2`
  return async function addTenantJob(identifier, payload, spec) {
    const given = jobOptions(spec, "addJob's spec") ?? {}
    const data = jobs.seal(identifier, payload)
    const tenant = data.rowtenancy.tenant
    try {
      let finalSpec = tenantSpec(given, tenant, limit)
      refuseBatchMerge(identifier, payload, finalSpec)
      if (options.fair && tenant !== null) {
        const { rows } = await target.withPgClient!((c) => c.query(waiting, [identifier, tenant]))
        finalSpec = {
          ...finalSpec,
          priority: Number(given.priority ?? 0) + Number(rows[0]?.n ?? 0),
        }
      }
      return await target.addJob(identifier, data, finalSpec)
    } catch (err) {
      throw asUnavailable(err)
    }
  }
}

/**
 * Anything with graphile-worker's `addJobs` (WorkerUtils, a task's helpers).
 */
export interface AddJobsLike {
  addJobs(
    specs: readonly { identifier: string; payload: unknown; [option: string]: unknown }[],
    jobKeyPreserveRunAt?: boolean,
  ): Promise<any>
}

/**
 * One job of {@link tenantAddJobs}: graphile-worker's `AddJobsJobSpec`, its
 * `payload` the user's.
 */
export interface TenantJobSpec {
  readonly identifier: string
  readonly payload?: unknown
  readonly [option: string]: unknown
}

/**
 * graphile-worker's `addJobs` (several jobs in one statement) with each job
 * sealed for its own task as {@link tenantAddJob} seals one: its `jobKey` the
 * tenant's own, and with `tenantQueue` its named queue the tenant's. `fair` is
 * not available here (it counts per job). An entry that cannot be sealed adds
 * nothing of the batch.
 *
 * @example
 * ```ts
 * const addJobs = tenantAddJobs(workerUtils, jobs)
 * await runWithTenant('7', () => addJobs([{ identifier: 'send-invoice', payload: { invoiceId: 12 } }]))
 * ```
 */
export function tenantAddJobs(
  target: AddJobsLike,
  jobs: JobTenancy,
  options: Omit<GraphileTenantOptions, 'fair'> = {},
): (specs: readonly TenantJobSpec[], jobKeyPreserveRunAt?: boolean) => Promise<any> {
  if ((options as GraphileTenantOptions).fair) {
    throw new InvalidInputError(
      'fair is not available on addJobs: add such jobs with tenantAddJob.',
    )
  }
  const limit = queueLimit(options)
  target = rawHelpers(target)
  return async function addTenantJobs(specs, jobKeyPreserveRunAt) {
    const sealed = listOnce(specs, "addJobs's jobs").map((entry) => {
      const { identifier, payload, ...spec } = jobOptions(entry, 'Each job of addJobs') ?? {}
      const data = jobs.seal(identifier as string, payload)
      const scoped = tenantSpec(spec, data.rowtenancy.tenant, limit)
      refuseBatchMerge(identifier as string, payload, scoped)
      return { ...scoped, identifier: identifier as string, payload: data }
    })
    try {
      return await target.addJobs(sealed, jobKeyPreserveRunAt)
    } catch (err) {
      throw asUnavailable(err)
    }
  }
}

/** graphile-worker's schema (`graphile_worker` by default), checked to be a plain identifier. */
function workerSchema(schema = 'graphile_worker'): string {
  if (typeof schema !== 'string' || !/^[a-z_][a-z0-9_]*$/i.test(schema)) {
    throw new InvalidInputError(`Invalid graphile-worker schema ${JSON.stringify(schema)}.`)
  }
  return schema
}

/** `tenantQueue` as a number of named queues per tenant (0: none). */
function queueLimit(options: GraphileTenantOptions): number {
  const limit = options.tenantQueue === true ? 1 : options.tenantQueue || 0
  if (!Number.isSafeInteger(limit) || limit < 0 || limit > 64) {
    throw new InvalidInputError(
      `tenantQueue must be true, false or a number from 1 to 64, not ${String(limit)}.`,
    )
  }
  return limit
}

/**
 * A job's spec as the tenant's: its `jobKey` scoped (graphile-worker keeps one
 * job per key across all tasks and tenants), and its named queue the tenant's
 * own (graphile-worker keeps one queue per name across all tasks and tenants,
 * so a name given as it is could put a job in another tenant's queue and hold
 * its jobs back): `queueName` is a base, `<queueName>:<tenant>`; with `limit`
 * named queues one of the tenant's (`tenant` the base when none is given).
 */
function tenantSpec(
  spec: Record<string, unknown>,
  tenant: string | null,
  limit: number,
): Record<string, unknown> {
  const scoped = withTenantKey(spec, 'jobKey', tenant, 'jobKey')
  const given = scoped.queueName
  const named = given !== undefined && given !== null
  if (tenant === null || limit === 0) {
    return named ? { ...scoped, queueName: tenantQueueName(given, tenant) } : scoped
  }
  const base = tenantQueueName(named ? given : 'tenant', tenant)
  const queueName = limit === 1 ? base : `${base}:${Math.floor(Math.random() * limit)}`
  return { ...scoped, queueName }
}

/**
 * A graphile-worker cron item (what `parseCronItems` takes): the task and its
 * payload are what {@link tenantCronItems} reads; the rest passes through.
 */
export interface CronItemLike {
  readonly task: string
  readonly payload?: Readonly<Record<string, unknown>> | undefined
  readonly [option: string]: unknown
}

/**
 * graphile-worker cron items whose payloads are sealed as {@link tenantAddJob}
 * seals a job's: outside a tenant context for cross-tenant tasks (the run is
 * audited under the task's reason), inside `runWithTenant` for one tenant's
 * schedule; an item's `options.jobKey` is the tenant's own, as `addJob`'s `jobKey` is.
 * graphile-worker adds `_cron: { ts, backfilled }` to every run's
 * data; {@link tenantTaskList} takes it off before the envelope is checked (the
 * handler finds it in `helpers.job.payload._cron`). A run of an item that was
 * not sealed (a crontab file's line) carries no tenant and is refused. Throws
 * `MissingTenantError` for a tenant task outside a tenant context.
 *
 * @example
 * ```ts
 * const jobs = createJobTenancy({ store, queues: { 'nightly-report': { crossTenant: 'nightly report' } } })
 * await run({
 *   connectionString,
 *   taskList: tenantTaskList(jobs, { 'nightly-report': report }),
 *   parsedCronItems: parseCronItems(tenantCronItems(jobs, [{ task: 'nightly-report', match: '0 4 * * *' }])),
 * })
 * ```
 */
export function tenantCronItems<I extends CronItemLike>(
  jobs: JobTenancy,
  items: readonly I[],
): (I & { payload: Record<string, unknown> })[] {
  return listOnce(items, "tenantCronItems's items").map((item) => {
    // each field read once: the task sealed for and the options scoped are the ones kept
    const fields = jobOptions(item, 'Each cron item')
    if (fields === undefined || fields === null) {
      throw new InvalidInputError(`Each cron item must be an object, not ${String(fields)}.`)
    }
    const { task, payload: given, options: own, ...rest } = fields
    const options = jobOptions(own, "A cron item's options")
    const payload = jobs.seal(task as string, given ?? null)
    return {
      ...(rest as unknown as I),
      task: task as string,
      payload: payload as unknown as Record<string, unknown>,
      // graphile-worker keeps one job per jobKey and one queue per name across all tasks and
      // tenants: both scoped to the tenant
      ...(options === undefined || options === null
        ? {}
        : { options: tenantSpec(options, payload.rowtenancy.tenant, 0) }),
    }
  })
}

/**
 * A job's data without the `_cron` stamp graphile-worker adds to a cron run,
 * when it is a sealed envelope; a cron run without an envelope is refused
 * here, with what to do.
 */
function withoutCronStamp(identifier: string, jobId: string, data: unknown): unknown {
  if (data === null || typeof data !== 'object' || !Object.hasOwn(data, '_cron')) return data
  const { _cron, ...rest } = data as Record<string, unknown>
  if (!Object.hasOwn(rest, ENVELOPE_KEY)) {
    throw new JobRejectedError(
      'no-tenant',
      `${notRun(identifier, jobId)}: it is a cron run whose item was not sealed (a crontab line, or an item ` +
        'given to graphile-worker as it is). Give the items through tenantCronItems(jobs, items).',
    )
  }
  return rest
}

/** Where {@link tenantHelpers} keeps graphile-worker's own helpers. */
const RAW_HELPERS = Symbol('rowtenancy.graphileHelpers')

/**
 * A task's helpers whose `addJob` and `addJobs` seal each job as
 * {@link tenantAddJob} and {@link tenantAddJobs} do, in the context the handler
 * runs in (its job's tenant): graphile-worker's own add a job with no envelope
 * (refused when it runs) and a `jobKey` as given, which could replace another
 * tenant's job (`1/daily` is tenant 1's `daily`). The rest is graphile-worker's
 * (`withPgClient` and `query` are its connection, bound to no tenant).
 */
function tenantHelpers(helpers: any, jobs: JobTenancy): any {
  if (helpers === null || typeof helpers !== 'object' || typeof helpers.addJob !== 'function') {
    return helpers
  }
  return {
    ...helpers,
    addJob: tenantAddJob(helpers, jobs),
    ...(typeof helpers.addJobs === 'function' ? { addJobs: tenantAddJobs(helpers, jobs) } : {}),
    [RAW_HELPERS]: helpers,
  }
}

/** graphile-worker's own helpers behind {@link tenantHelpers}' (sealed once, not twice); else `target`. */
function rawHelpers<T>(target: T): T {
  const raw = (target as { [RAW_HELPERS]?: T } | null)?.[RAW_HELPERS]
  return raw ?? target
}

/**
 * A graphile-worker task's handler: payload, job info, and the task helpers
 * (their `addJob` and `addJobs` seal the job as the handler's tenant's, as
 * {@link tenantAddJob} does).
 */
export type TenantTask<P = any> = (
  payload: P,
  info: JobInfo,
  helpers: any,
) => Promise<unknown> | unknown

/**
 * Options of {@link tenantTaskList}.
 */
export interface TenantTaskListOptions {
  /**
   * When a job fails because the database is unavailable, how long to wait for
   * it to answer again before handing the failure to graphile-worker (30,000 ms
   * by default; 0: at once). graphile-worker 0.17 records a failure once, with
   * no retry on a refused or lost connection: a failure it cannot record leaves
   * the job locked (for 4 hours) and its promise rejected unhandled. Waiting
   * until the database answers lets the failure be recorded, so the job is
   * retried by graphile-worker's rules.
   */
  readonly unavailableHoldMs?: number | undefined
  /** graphile-worker's schema, where a held job's copy is added; `graphile_worker` by default. */
  readonly schema?: string | undefined
}

/**
 * Turns `{ identifier: handler }` into graphile-worker's task list, each task
 * running inside its job's tenant; refused jobs throw (graphile-worker retries
 * them up to `max_attempts`, then keeps them as permanently failed). A batch
 * job's handler (array payload) may return one promise per entry, as with
 * graphile-worker: a rejected one fails the job, which is retried whole.
 *
 * @example
 * ```ts
 * await run({ connectionString, taskList: tenantTaskList(jobs, { 'send-invoice': sendInvoice }) })
 * ```
 */
export function tenantTaskList(
  jobs: JobTenancy,
  tasks: Readonly<Record<string, TenantTask>>,
  options: TenantTaskListOptions = {},
): Record<string, (payload: unknown, helpers: any) => Promise<void>> {
  const holdMs = holdOption(options.unavailableHoldMs)
  const schema = workerSchema(options.schema)
  const list: Record<string, (payload: unknown, helpers: any) => Promise<void>> = {}
  for (const [identifier, handler] of Object.entries(tasks)) {
    jobs.rule(identifier)
    if (typeof handler !== 'function') {
      throw new InvalidInputError(
        `The handler of task ${JSON.stringify(identifier)} must be a function, not ${typeof handler}.`,
      )
    }
    list[identifier] = async (payload, helpers) => {
      const job = helpers.job
      try {
        await jobs.process(
          identifier,
          withoutCronStamp(identifier, String(job.id), payload),
          { id: String(job.id), attempt: Number(job.attempts) },
          (p, info) => {
            const result = handler(p, info, tenantHelpers(helpers, jobs))
            return Array.isArray(p) ? settleBatch(p, result) : result
          },
          // a copy runs later in this one's place; this one completes
          (delayMs) => addHeldCopy(helpers, schema, identifier, payload, delayMs),
        )
      } catch (err) {
        const probe = () =>
          helpers.withPgClient((c: { query(text: string): Promise<unknown> }) =>
            c.query('select 1'),
          )
        await holdWhileUnavailable(err, probe, holdMs)
        throw err
      }
    }
  }
  return list
}
