import { InvalidInputError } from '../errors/index.js'
import { asUnavailable, unavailableReason } from '../sql/unavailable.js'
import type { JobEnvelope } from './envelope.js'
import { JobRejectedError } from './job-errors.js'
import { listOnce, tenantKey, withTenantKey } from './job-keys.js'
import type { JobInfo, JobTenancy } from './job-tenancy.js'
import { pgBossSendOptions } from './pg-boss-send-options.js'
import { holdOption, holdWhileUnavailable } from './unavailable-hold.js'

/**
 * The part of a pg-boss 10 instance the adapter uses.
 *
 * @example
 * ```ts
 * const boss: PgBossLike = new PgBoss(process.env.DATABASE_URL)
 * ```
 */
export interface PgBossLike {
  send(name: string, data: object, options: Record<string, unknown>): Promise<string | null>
  schedule(
    name: string,
    cron: string,
    data?: object,
    options?: Record<string, unknown>,
  ): Promise<void>
  work(
    name: string,
    options: Record<string, unknown>,
    handler: (jobs: any[]) => Promise<unknown>,
  ): Promise<string>
  /** pg-boss's bulk `insert`, needed by {@link TenantPgBoss.insert}. */
  insert?(jobs: object[]): Promise<unknown>
  fail(name: string, id: string, data?: object): Promise<unknown>
  complete(name: string, ids: string[], data?: object): Promise<unknown>
  getDb(): { executeSql(text: string, values: unknown[]): Promise<{ rows: any[] }> }
}

/**
 * A pg-boss job as the handler's third argument sees it (with metadata).
 *
 * @example
 * ```ts
 * const handler = async (payload: unknown, info: JobInfo, job: PgBossJob) => job.retryCount
 * ```
 */
export interface PgBossJob {
  readonly id: string
  readonly name: string
  readonly data: unknown
  /** Present with `includeMetadata: true` (then `info.attempt` is known, else 0). */
  readonly retryCount?: number
  readonly [key: string]: unknown
}

/**
 * Options of `send` beyond pg-boss's own.
 *
 * @example
 * ```ts
 * await boss.send('report', { month: '2026-10' }, { fair: true, retryLimit: 3 })
 * ```
 */
export interface TenantSendOptions {
  /**
   * Fair scheduling: the job's priority is lowered by the number of jobs of the
   * same tenant already waiting in this queue, so a tenant with a backlog of
   * thousands does not starve one that sends a few (round-robin between
   * tenants). Costs one count query per send.
   */
  readonly fair?: boolean | undefined
  readonly [option: string]: unknown
}

/**
 * One job of {@link TenantPgBoss.insert}: pg-boss's `JobInsert`, its `data` the
 * payload.
 */
export interface TenantJobInsert {
  readonly name: string
  readonly data?: unknown
  readonly [option: string]: unknown
}

/**
 * pg-boss with tenant-carrying jobs.
 *
 * @example
 * ```ts
 * const boss = tenantPgBoss(pgBoss, jobs)
 * await boss.work('send-invoice', { batchSize: 1 }, async (payload) => sendInvoice(payload))
 * ```
 */
export interface TenantPgBoss {
  /** The pg-boss instance underneath. */
  readonly boss: PgBossLike
  /**
   * Sends `payload` to `queue` as the current tenant (see `JobTenancy.seal`); a
   * database that cannot take it now throws `DatabaseUnavailableError`. A
   * tenant job's `singletonKey` is the tenant's own (`<tenant>/<key>`, and
   * `<tenant>/` when none is given), so pg-boss's singleton rules hold per tenant; a tenant
   * job's `id` is refused (one per queue across tenants, and a UUID cannot be scoped).
   */
  send(queue: string, payload: unknown, options?: TenantSendOptions): Promise<string | null>
  /**
   * Inserts several jobs at once (pg-boss's `insert`, one statement), each
   * sealed for its own queue (`name`) as `send` seals one, its `singletonKey`
   * the tenant's own. `fair` is not available here (it counts per job).
   */
  insert(jobs: readonly TenantJobInsert[]): Promise<void>
  /**
   * A cron schedule whose every job runs as the tenant current now. pg-boss 10
   * keeps one schedule per queue, so a queue's schedule belongs to one tenant (or
   * to none): scheduling it for another throws `InvalidInputError`.
   */
  schedule(
    queue: string,
    cron: string,
    payload: unknown,
    options?: Record<string, unknown>,
  ): Promise<void>
  /**
   * Runs each job of `queue` with `handler` inside the job's tenant; refused jobs
   * fail with the reason. With `includeMetadata: true` the handler learns the
   * attempt number, and a waiting job's copy keeps its priority and retry
   * settings (else the queue's defaults); without it, fetching is cheaper.
   * `unavailableHoldMs` (30,000 by default, 0: off): a job that failed because
   * the database is unavailable is handed back to pg-boss only once the database
   * answers (or after that long), because pg-boss writes the failure once and
   * throws a refused connection uncaught; a job whose failure could not be
   * written is retried only after its `expireInSeconds`.
   */
  work<P = any>(
    queue: string,
    options: Record<string, unknown>,
    handler: (payload: P, info: JobInfo, job: PgBossJob) => Promise<unknown> | unknown,
  ): Promise<string>
}

/**
 * Wraps a started pg-boss 10 instance (queues created with `createQueue`) so
 * that every job carries its tenant. `schema` is pg-boss's schema (for `fair`).
 *
 * @example
 * ```ts
 * const boss = tenantPgBoss(pgBoss, jobs)
 * await runWithTenant('7', () => boss.send('send-invoice', { invoiceId: 12 }))
 * ```
 */
export function tenantPgBoss(
  boss: PgBossLike,
  jobs: JobTenancy,
  options: { schema?: string | undefined } = {},
): TenantPgBoss {
  const schema = options.schema ?? 'pgboss'
  if (!/^[a-z_][a-z0-9_]*$/i.test(schema))
    throw new TypeError(`Invalid pg-boss schema ${JSON.stringify(schema)}.`)
  const pending =
    `select count(*)::int as n from ${schema}.job where name = $1 and state < 'active' ` +
    `and data->'rowtenancy'->>'tenant' = $2`
  const scheduled = `select data->'rowtenancy'->>'tenant' as tenant from ${schema}.schedule where name = $1`
  /** The tenant of the schedule of `queue`: `undefined` when there is none, `null` for no tenant. */
  const scheduleTenant = async (queue: string): Promise<string | null | undefined> => {
    const { rows } = await boss.getDb().executeSql(scheduled, [queue])
    return rows.length === 0 ? undefined : ((rows[0].tenant as string | null) ?? null)
  }

  return Object.freeze({
    boss,
    async send(queue: string, payload: unknown, sendOptions: TenantSendOptions = {}) {
      const { fair, ...options } = sendOptions as Record<string, unknown>
      const data = jobs.seal(queue, payload)
      const rest = scopeSingleton(options, data.rowtenancy.tenant)
      try {
        if (fair && data.rowtenancy.tenant !== null) {
          const { rows } = await boss.getDb().executeSql(pending, [queue, data.rowtenancy.tenant])
          rest.priority = Number(rest.priority ?? 0) - Number(rows[0]?.n ?? 0)
        }
        return await boss.send(queue, data as object, pgBossSendOptions(rest))
      } catch (err) {
        throw asUnavailable(err)
      }
    },
    async insert(entries: readonly TenantJobInsert[]) {
      if (typeof boss.insert !== 'function') throw new TypeError('This pg-boss has no insert.')
      const sealed = listOnce(entries, "insert's jobs").map(
        ({ name, data: payload, ...options }) => {
          if (options.fair !== undefined) {
            throw new InvalidInputError(
              'fair is not available on insert: send such jobs one by one.',
            )
          }
          const data = jobs.seal(name, payload)
          return { ...scopeSingleton(options, data.rowtenancy.tenant), name, data }
        },
      )
      try {
        await boss.insert(sealed)
      } catch (err) {
        throw asUnavailable(err)
      }
    },
    async schedule(queue: string, cron: string, payload: unknown, scheduleOptions = {}) {
      const data = jobs.seal(queue, payload)
      const tenant = data.rowtenancy.tenant
      const options = scopeSingleton(scheduleOptions, tenant)
      try {
        // pg-boss 10 keeps one schedule per queue: another tenant's is not replaced
        const before = await scheduleTenant(queue)
        if (before !== undefined && before !== tenant) throw scheduleTaken(queue, tenant)
        await boss.schedule(queue, cron, data as object, options)
        if ((await scheduleTenant(queue)) !== tenant) throw scheduleTaken(queue, tenant)
      } catch (err) {
        throw asUnavailable(err)
      }
    },
    work(queue, workOptions, handler) {
      return workTenantJobs(boss, jobs, queue, workOptions, handler)
    },
  } satisfies TenantPgBoss)
}

/**
 * Starts a worker of `queue` whose handler runs each job in its tenant's
 * context. pg-boss writes the outcome after the callback: it completes every
 * id of the batch when the callback returns and fails every id still active
 * when it throws, without awaiting either (a connection lost there is an
 * unhandled rejection: the process exits). So the callback returns when every
 * job is done, and throws when the failures share one output, after completing
 * the done ones itself and, when a failure means the database is away, after
 * the database answers again: each outcome is then written once, by pg-boss.
 * Only a batch whose failures differ is written job by job here, and pg-boss's
 * complete after it finds nothing left to change.
 */
function workTenantJobs<P>(
  boss: PgBossLike,
  jobs: JobTenancy,
  queue: string,
  workOptions: Record<string, unknown>,
  handler: (payload: P, info: JobInfo, job: PgBossJob) => Promise<unknown> | unknown,
): Promise<string> {
  jobs.rule(queue)
  const { unavailableHoldMs, ...bossOptions } = workOptions
  const holdMs = holdOption(unavailableHoldMs as number | undefined)
  const probe = () => boss.getDb().executeSql('select 1', [])
  const hold = (err: unknown) => holdWhileUnavailable(err, probe, holdMs)
  const record = (write: () => Promise<unknown>) =>
    write().catch(async (err: unknown) => {
      await hold(err)
      return write()
    })
  return boss.work(queue, bossOptions, async (batch: PgBossJob[]) => {
    const done: string[] = []
    const failures: [string, object][] = []
    const errors: unknown[] = []
    let result: unknown
    for (const job of batch) {
      try {
        result = await runOne(boss, jobs, queue, job, handler)
        done.push(job.id)
      } catch (err) {
        failures.push([job.id, errorOutput(err)])
        errors.push(err)
      }
    }
    if (failures.length === 0) return batch.length === 1 ? result : undefined
    // held once, before anything is written: the done jobs' complete would fail the same way
    await hold(errors.find((err) => unavailableReason(err) !== undefined))
    if (done.length > 0) await record(() => boss.complete(queue, done))
    const output = sharedOutput(failures)
    if (output !== undefined) throw output
    for (const [id, out] of failures) await record(() => boss.fail(queue, id, out))
  })
}

/**
 * The output every failure of a batch has (what pg-boss writes for each id
 * when the callback throws it), or `undefined` when they differ.
 */
function sharedOutput(failures: readonly [string, object][]): object | undefined {
  const first = JSON.stringify(failures[0]![1])
  for (let i = 1; i < failures.length; i++) {
    if (JSON.stringify(failures[i]![1]) !== first) return undefined
  }
  return failures[0]![1]
}

async function runOne(
  boss: PgBossLike,
  jobs: JobTenancy,
  queue: string,
  job: PgBossJob,
  handler: (payload: any, info: JobInfo, job: PgBossJob) => unknown,
): Promise<unknown> {
  return jobs.process(
    queue,
    job.data,
    { id: job.id, attempt: typeof job.retryCount === 'number' ? job.retryCount + 1 : 0 },
    (payload, info) => handler(payload, info, job),
    async (delayMs) => {
      // A copy runs later; this one completes. Same envelope, so the same tenant and signature.
      const copy: Record<string, unknown> = { startAfter: new Date(Date.now() + delayMs) }
      for (const key of ['priority', 'retryLimit', 'retryDelay', 'retryBackoff', 'deadLetter']) {
        if (job[key] !== undefined && job[key] !== null) copy[key] = job[key]
      }
      if (typeof job.singletonKey === 'string') copy.singletonKey = job.singletonKey
      const id = await boss.send(queue, job.data as JobEnvelope as object, pgBossSendOptions(copy))
      // a copy the queue's policy refused: this job must not complete as if it would run later
      if (id === null || id === undefined) {
        throw new JobRejectedError(
          'suspended',
          `Job ${job.id} on queue ${JSON.stringify(queue)} of a suspended tenant was not put back (the queue ` +
            'refused its copy: another job holds its singleton key); it fails and is retried by the queue rules.',
        )
      }
    },
  )
}

function errorOutput(err: unknown): object {
  const e = err as { name?: string; message?: string; code?: string; reason?: string }
  return { name: e?.name, message: e?.message ?? String(err), code: e?.code, reason: e?.reason }
}

/**
 * pg-boss options whose `singletonKey` is the tenant's own (see `tenantKey`). A
 * tenant job always gets one (the tenant's alone when none is given): pg-boss
 * applies its singleton rules (`short`, `singleton` and `stately` queues,
 * `singletonSeconds`) per key, and without one per queue, so one tenant's
 * queued job would make pg-boss drop every other tenant's. A tenant job's `id`
 * (a UUID, which cannot be scoped) is refused.
 */
function scopeSingleton(
  options: Record<string, unknown>,
  tenant: string | null,
): Record<string, unknown> {
  // a cross-tenant key is kept as given, once it is known not to have a tenant's shape; the copy
  // (each value read once) is what is checked and what pg-boss gets
  if (tenant === null) return withTenantKey(options, 'singletonKey', null, 'singletonKey')
  const own = { ...options }
  if (own.id !== undefined && own.id !== null) {
    throw new InvalidInputError(
      'A tenant job cannot choose its pg-boss id: pg-boss keeps one job per id in a queue across all tenants, ' +
        "so a job sent with an id another tenant's job has is dropped (or drops that tenant's later one). Leave id " +
        "out (send returns the id pg-boss chose), or use singletonKey, which is the tenant's own.",
    )
  }
  return { ...own, singletonKey: tenantKey(tenant, own.singletonKey ?? '', 'singletonKey') }
}

function scheduleTaken(queue: string, tenant: string | null): InvalidInputError {
  return new InvalidInputError(
    `Queue ${JSON.stringify(queue)} already has a pg-boss schedule of another tenant (or of no tenant), and ` +
      `pg-boss 10 keeps one schedule per queue: scheduling it for ${tenant === null ? 'no tenant' : `tenant ${JSON.stringify(tenant)}`} ` +
      'would replace it. Give each tenant its own queue, or one cross-tenant schedule that fans out (enqueueForEachTenant).',
  )
}
