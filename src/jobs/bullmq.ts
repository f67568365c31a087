import { InvalidInputError } from '../errors/index.js'
import { JobRejectedError } from './job-errors.js'
import { tenantKey, withTenantKey } from './job-keys.js'
import { notRun } from './job-run.js'
import type { JobInfo, JobTenancy } from './job-tenancy.js'

/**
 * The part of a BullMQ `Queue` the adapter uses.
 *
 * @example
 * ```ts
 * const queue: BullQueueLike = new Queue('send-invoice', { connection })
 * ```
 */
export interface BullQueueLike {
  readonly name: string
  add(name: string, data: unknown, opts?: Record<string, unknown>): Promise<any>
  addBulk?(jobs: { name: string; data: unknown; opts?: Record<string, unknown> }[]): Promise<any>
  upsertJobScheduler?(
    id: string,
    repeat: Record<string, unknown>,
    template?: Record<string, unknown>,
  ): Promise<any>
}

/**
 * A BullMQ queue whose `add` seals the current tenant into the job data.
 *
 * @example
 * ```ts
 * const invoices = tenantQueue(new Queue('send-invoice', { connection }), jobs)
 * await runWithTenant('7', () => invoices.add('send', { invoiceId: 12 }, { attempts: 3 }))
 * ```
 */
export interface TenantBullQueue {
  readonly queue: BullQueueLike
  /**
   * Adds a job as the current tenant; BullMQ options (`delay`, `attempts`...) pass through, except
   * that a `jobId` and a `deduplication.id` are the tenant's own (stored as `<tenant>/<key>`), and
   * `repeat` is refused (use `upsertJobScheduler`). With a secret, the signature binds the job's
   * name too, so a handler may branch on it.
   */
  add(name: string, payload: unknown, opts?: Record<string, unknown>): Promise<any>
  /** Adds several jobs at once (BullMQ's `addBulk`), each sealed as `add` seals one. */
  addBulk(
    jobs: readonly { name: string; data: unknown; opts?: Record<string, unknown> }[],
  ): Promise<any>
  /**
   * A job scheduler (repeatable job) whose every run carries the tenant current now. The
   * scheduler id is the tenant's own (stored as `<tenant>/<id>`): two tenants may use the same id.
   */
  upsertJobScheduler(
    id: string,
    repeat: Record<string, unknown>,
    template?: { name?: string; data?: unknown; opts?: Record<string, unknown> },
  ): Promise<any>
}

/**
 * Wraps a BullMQ `Queue`; the rule key is the queue's name.
 *
 * @example
 * ```ts
 * const invoices = tenantQueue(queue, jobs)
 * ```
 */
export function tenantQueue(queue: BullQueueLike, jobs: JobTenancy): TenantBullQueue {
  jobs.rule(queue.name)
  return Object.freeze({
    queue,
    add(name: string, payload: unknown, opts?: Record<string, unknown>) {
      if (opts?.repeat !== undefined) return Promise.reject(repeatRefused())
      const data = jobs.seal(queue.name, payload, name)
      return queue.add(name, data, scopeKeys(opts, data.rowtenancy.tenant))
    },
    addBulk(entries: readonly { name: string; data: unknown; opts?: Record<string, unknown> }[]) {
      if (typeof queue.addBulk !== 'function') {
        return Promise.reject(new TypeError('This BullMQ queue has no addBulk.'))
      }
      try {
        const sealed = entries.map(({ name, data, opts }) => {
          if (opts?.repeat !== undefined) throw repeatRefused()
          const envelope = jobs.seal(queue.name, data, name)
          return { name, data: envelope, opts: scopeKeys(opts, envelope.rowtenancy.tenant) }
        })
        return queue.addBulk(sealed)
      } catch (err) {
        return Promise.reject(err)
      }
    },
    upsertJobScheduler(
      id: string,
      repeat: Record<string, unknown>,
      template: { name?: string; data?: unknown; opts?: Record<string, unknown> } = {},
    ) {
      if (typeof queue.upsertJobScheduler !== 'function') {
        throw new TypeError('This BullMQ queue has no upsertJobScheduler (BullMQ >= 5.16 has).')
      }
      // BullMQ names the runs after the scheduler id when the template has no name: the id as
      // given (not the tenant's scoped one) is their name here, sealed into the signature
      const name = template.name ?? id
      const data = jobs.seal(queue.name, template.data, name)
      const tenant = data.rowtenancy.tenant
      const scopedId = tenant === null ? id : tenantKey(tenant, id, 'The job scheduler id')
      return queue.upsertJobScheduler(scopedId, repeat, {
        ...template,
        name,
        data,
        ...(template.opts ? { opts: scopeKeys(template.opts, tenant) } : {}),
      })
    },
  })
}

/**
 * BullMQ job options whose keys (`jobId`, `deduplication.id`) are the tenant's
 * own (see `tenantKey`): BullMQ keeps one job per id and per deduplication id in
 * a queue, so an unscoped key would let one tenant's job make BullMQ drop
 * another tenant's.
 */
function scopeKeys(
  opts: Record<string, unknown> | undefined,
  tenant: string | null,
): Record<string, unknown> | undefined {
  if (opts === undefined || opts === null || tenant === null) return opts
  let scoped = withTenantKey(opts, 'jobId', tenant, 'jobId')
  const dedup = opts.deduplication as Record<string, unknown> | undefined
  if (dedup !== undefined && dedup !== null && typeof dedup === 'object') {
    scoped = { ...scoped, deduplication: withTenantKey(dedup, 'id', tenant, 'deduplication.id') }
  }
  return scoped
}

/**
 * A BullMQ processor (`new Worker(name, processor, opts)`) that runs `handler`
 * inside each job's tenant. A refusal that a retry cannot cure (no tenant,
 * malformed, bad signature) fails the job at once as BullMQ's
 * `UnrecoverableError`; an unknown or suspended tenant fails by the job's
 * `attempts`, and so does an error the handler throws; with the `wait` policy a
 * suspended tenant's job is moved to the delayed set without using an attempt.
 *
 * @example
 * ```ts
 * new Worker('send-invoice', tenantProcessor(jobs, 'send-invoice', sendInvoice), { connection })
 * ```
 */
export function tenantProcessor<P = any>(
  jobs: JobTenancy,
  queueName: string,
  handler: (payload: P, info: JobInfo, job: any) => Promise<unknown> | unknown,
): (job: any, token?: string) => Promise<unknown> {
  jobs.rule(queueName)
  return function tenantJob(job, token) {
    if (typeof job.name !== 'string') {
      // the name is part of what is signed: a job without one (its field removed) is no job's
      const err = new JobRejectedError(
        'malformed',
        `${notRun(queueName, String(job.id))}: it has no name (BullMQ gives every job one).`,
      )
      return Promise.reject(unrecoverable(err))
    }
    return jobs.process(
      queueName,
      job.data,
      { id: String(job.id), attempt: Number(job.attemptsMade ?? 0) + 1, name: job.name },
      (payload, info) => handler(payload as P, info, job),
      async (delayMs, error) => {
        await job.moveToDelayed(Date.now() + delayMs, token)
        throw named('DelayedError', error.message, error)
      },
      unrecoverable,
    )
  }
}

/** BullMQ 6 ignores `repeat` on `add` (the job runs once); BullMQ 5 keys it by name and pattern, not tenant. */
function repeatRefused(): InvalidInputError {
  return new InvalidInputError(
    'add(name, payload, { repeat }) is refused on a rowtenancy queue: use ' +
      "upsertJobScheduler(id, repeat, { name, data }), whose id is the tenant's own.",
  )
}

/** A refusal that a retry cannot cure fails the job at once, as BullMQ's `UnrecoverableError`. */
function unrecoverable(err: JobRejectedError): Error {
  if (err.retryable) return err
  return named('UnrecoverableError', `[${err.code}:${err.reason}] ${err.message}`, err)
}

function named(name: string, message: string, cause: unknown): Error {
  const err = new Error(message, { cause })
  err.name = name
  return err
}
