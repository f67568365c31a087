import { ConfigError, InvalidInputError } from '../errors/index.js'
import type { JobEnvelope } from './envelope.js'
import { JobRejectedError } from './job-errors.js'
import { jobOptions, listOnce, tenantKey, withTenantKey } from './job-keys.js'
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
  /** The queue's default job options, which BullMQ lays under every job's own (checked when wrapped). */
  readonly defaultJobOptions?: object | undefined
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
 * Wraps a BullMQ `Queue`; the rule key is the queue's name. A queue whose
 * `defaultJobOptions` hold a key (`deduplication`, `parent`, `repeatJobKey`...)
 * is refused with `ConfigError`, when wrapped and at every send after (the
 * defaults can be changed later): BullMQ would give every tenant's job that key.
 *
 * @example
 * ```ts
 * const invoices = tenantQueue(queue, jobs)
 * ```
 */
export function tenantQueue(queue: BullQueueLike, jobs: JobTenancy): TenantBullQueue {
  jobs.rule(queue.name)
  checkQueueDefaults(queue)
  return Object.freeze({
    queue,
    add(name: string, payload: unknown, opts?: Record<string, unknown>) {
      try {
        checkQueueDefaults(queue)
        const job = sealOne(jobs, queue.name, name, payload, opts)
        return queue.add(name, job.data, job.opts)
      } catch (err) {
        return Promise.reject(err)
      }
    },
    addBulk(entries: readonly { name: string; data: unknown; opts?: Record<string, unknown> }[]) {
      if (typeof queue.addBulk !== 'function') {
        return Promise.reject(new TypeError('This BullMQ queue has no addBulk.'))
      }
      try {
        checkQueueDefaults(queue)
        const sealed = listOnce(entries, "addBulk's jobs").map(({ name, data, opts }) => ({
          name,
          ...sealOne(jobs, queue.name, name, data, opts),
        }))
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
        return Promise.reject(
          new TypeError('This BullMQ queue has no upsertJobScheduler (BullMQ >= 5.16 has).'),
        )
      }
      try {
        checkQueueDefaults(queue)
        // a copy, each value read once: the options scoped are the ones BullMQ gets
        const own = { ...jobOptions(template, "upsertJobScheduler's template") }
        // BullMQ names the runs after the scheduler id when the template has no name: the id as
        // given (not the tenant's scoped one) is their name here, sealed into the signature
        const name = jobName(own.name ?? id)
        const data = jobs.seal(queue.name, own.data, name)
        const tenant = data.rowtenancy.tenant
        const scopedId = tenantKey(tenant, id, 'The job scheduler id')
        const opts = jobOptions(own.opts, "A job scheduler template's opts")
        return queue.upsertJobScheduler(scopedId, repeat, {
          ...own,
          name,
          data,
          ...(opts ? { opts: scopeKeys(opts, tenant, jobs) } : { opts: undefined }),
        })
      } catch (err) {
        return Promise.reject(err)
      }
    },
  })
}

/**
 * Job options that name a job (a key, or another job) and that BullMQ takes
 * from a queue's defaults (not `jobId`): per job, never a queue's default.
 */
const KEY_OPTIONS = ['deduplication', 'debounce', 'parent', 'repeat', 'repeatJobKey']

/**
 * Refuses a queue whose `defaultJobOptions` hold a job key: BullMQ lays them
 * under every job after the adapter scoped the job's own, so such a default
 * would be one key for every tenant (one tenant's job dropping or replacing
 * another's).
 */
function checkQueueDefaults(queue: BullQueueLike): void {
  const defaults = queue.defaultJobOptions as Record<string, unknown> | undefined
  if (defaults === undefined || defaults === null) return
  const named = KEY_OPTIONS.filter((k) => defaults[k] !== undefined)
  if (named.length > 0) {
    throw new ConfigError(
      `BullMQ queue ${JSON.stringify(queue.name)} has ${named.join(', ')} in its defaultJobOptions: ` +
        "BullMQ would give every tenant's job that one key. Pass it per job (add's options), where it is the tenant's own.",
    )
  }
}

/**
 * A node of a BullMQ flow (`FlowProducer.add`): a job and the child jobs that
 * must complete before it runs.
 */
export interface BullFlowJob {
  readonly name: string
  readonly queueName: string
  readonly data?: unknown
  readonly prefix?: string | undefined
  readonly opts?: Record<string, unknown> | undefined
  readonly children?: readonly BullFlowJob[] | undefined
}

/**
 * The part of a BullMQ `FlowProducer` the adapter uses.
 *
 * @example
 * ```ts
 * const flow: BullFlowProducerLike = new FlowProducer({ connection })
 * ```
 */
export interface BullFlowProducerLike {
  add(flow: any, opts?: any): Promise<any>
  addBulk?(flows: any[]): Promise<any>
}

/**
 * A BullMQ `FlowProducer` whose flows carry the current tenant in every job.
 */
export interface TenantBullFlowProducer {
  readonly flow: BullFlowProducerLike
  /**
   * Adds a flow as the current tenant: every job of the tree (parent and children, on any
   * declared queue) is sealed as `tenantQueue(...).add` seals one, with its own queue and name;
   * `jobId`, `deduplication.id` and `parent.id` are the tenant's own, `repeat` is refused. A node on an
   * undeclared queue refuses the whole flow before anything is added. `opts.queuesOptions[queue].defaultJobOptions`
   * are laid under each job's own options of that queue before it is sealed, so their keys are the tenant's
   * own too. A cross-tenant job below a tenant's job cannot have a `jobId` or deduplication id (BullMQ would
   * make the existing job of that id the tenant's job's child).
   */
  add(flow: BullFlowJob, opts?: Record<string, unknown>): Promise<any>
  /** Adds several flows at once (BullMQ's `addBulk`), each sealed as `add` seals one. */
  addBulk(flows: readonly BullFlowJob[]): Promise<any>
}

/**
 * Wraps a BullMQ `FlowProducer`; each job's rule key is its `queueName`. Work the
 * queues with {@link tenantProcessor} as usual: a parent runs in its tenant once
 * its children complete.
 *
 * @example
 * ```ts
 * const flows = tenantFlowProducer(new FlowProducer({ connection }), jobs)
 * await runWithTenant('7', () =>
 *   flows.add({ name: 'close', queueName: 'month-end', children: [{ name: 'sum', queueName: 'ledger', data: { month: 11 } }] }),
 * )
 * ```
 */
export function tenantFlowProducer(
  flow: BullFlowProducerLike,
  jobs: JobTenancy,
): TenantBullFlowProducer {
  return Object.freeze({
    flow,
    add(node: BullFlowJob, opts?: Record<string, unknown>) {
      try {
        const { defaults, rest } = flowDefaults(opts)
        return flow.add(sealFlow(node, jobs, 0, defaults), rest)
      } catch (err) {
        return Promise.reject(err)
      }
    },
    addBulk(nodes: readonly BullFlowJob[]) {
      if (typeof flow.addBulk !== 'function') {
        return Promise.reject(new TypeError('This BullMQ flow producer has no addBulk.'))
      }
      try {
        return flow.addBulk(
          listOnce(nodes, "addBulk's flows").map((node) => sealFlow(node, jobs, 0, NO_DEFAULTS)),
        )
      } catch (err) {
        return Promise.reject(err)
      }
    },
  })
}

/** How deep a flow may nest (BullMQ's own limit is far larger; a cycle would recurse forever). */
const MAX_FLOW_DEPTH = 100

/** The default job options of a flow, per queue name. */
type FlowDefaults = ReadonlyMap<string, Record<string, unknown>>

const NO_DEFAULTS: FlowDefaults = new Map()

/**
 * The `queuesOptions[queue].defaultJobOptions` of a flow's options, taken out:
 * BullMQ would lay them under every job of that queue after the job was sealed,
 * keys and all, so they are laid under each job's own options before, and
 * scoped with them. The flow's other options stay as they are.
 */
function flowDefaults(opts: Record<string, unknown> | undefined): {
  defaults: FlowDefaults
  rest: Record<string, unknown> | undefined
} {
  const queues = opts?.queuesOptions
  if (queues === undefined || queues === null) return { defaults: NO_DEFAULTS, rest: opts }
  if (typeof queues !== 'object') {
    throw new InvalidInputError("A flow's queuesOptions must be an object keyed by queue name.")
  }
  const defaults = new Map<string, Record<string, unknown>>()
  const kept: Record<string, unknown> = {}
  for (const [name, queueOpts] of Object.entries(queues as Record<string, unknown>)) {
    if (queueOpts === null || typeof queueOpts !== 'object') continue
    const { defaultJobOptions, ...others } = queueOpts as Record<string, unknown>
    if (defaultJobOptions !== undefined && defaultJobOptions !== null) {
      if (typeof defaultJobOptions !== 'object') {
        throw new InvalidInputError(
          `The flow's queuesOptions[${JSON.stringify(name)}].defaultJobOptions must be an object.`,
        )
      }
      // BullMQ takes a flow job's id and parent from the job alone, never from these
      const {
        jobId: _id,
        parent: _parent,
        ...jobDefaults
      } = defaultJobOptions as Record<string, unknown>
      defaults.set(name, jobDefaults)
    }
    kept[name] = others
  }
  return { defaults, rest: { ...opts, queuesOptions: kept } }
}

/**
 * A flow node and its children, each job sealed for its own queue and name,
 * its queue's `defaults` (the flow's `queuesOptions`) under its own options.
 * `underTenant`: a tenant's job is above this node in the tree.
 */
function sealFlow(
  node: BullFlowJob,
  jobs: JobTenancy,
  depth: number,
  defaults: FlowDefaults,
  underTenant = false,
): BullFlowJob {
  if (depth > MAX_FLOW_DEPTH) {
    throw new InvalidInputError(`A flow nested deeper than ${MAX_FLOW_DEPTH} jobs is refused.`)
  }
  if (node === null || typeof node !== 'object') {
    throw new InvalidInputError('Every job of a flow needs a queueName (a string).')
  }
  // each field read once: the queue and name sealed are the ones BullMQ gets
  const { children, queueName, name, data, opts: own, ...rest } = node
  if (typeof queueName !== 'string') {
    throw new InvalidInputError('Every job of a flow needs a queueName (a string).')
  }
  if (typeof name !== 'string') {
    throw new InvalidInputError(
      `A job of the flow on queue ${JSON.stringify(queueName)} has no name.`,
    )
  }
  const base = defaults.get(queueName)
  const opts = base === undefined ? own : { ...base, ...own }
  const sealed = sealOne(jobs, queueName, name, data, opts)
  const tenant = sealed.data.rowtenancy.tenant
  if (underTenant && tenant === null) refuseAdoption(queueName, sealed.opts)
  const below = underTenant || tenant !== null
  return {
    ...rest,
    queueName,
    name,
    ...sealed,
    ...(children === undefined
      ? {}
      : {
          children: listOnce(children, "A flow job's children").map((c) =>
            sealFlow(c, jobs, depth + 1, defaults, below),
          ),
        }),
  }
}

/**
 * Refuses a key on a cross-tenant job below a tenant's job in a flow. Its keys
 * are kept as given, and BullMQ makes an existing job of that id the child of
 * the new job's parent (a completed one hands it its result at once): a
 * tenant's flow naming the app's cross-tenant job would take it over and read
 * its result.
 */
function refuseAdoption(queue: string, opts: Record<string, unknown> | undefined): void {
  const named = ['jobId', 'deduplication', 'debounce'].filter(
    (k) => opts?.[k] !== undefined && opts[k] !== null,
  )
  if (named.length === 0) return
  throw new InvalidInputError(
    `A cross-tenant job in a tenant's flow (queue ${JSON.stringify(queue)}) cannot have ${named.join(', ')}: ` +
      "BullMQ would make the existing cross-tenant job of that id a child of the tenant's job. Leave it out: " +
      'the job is a new one of the flow.',
  )
}

/**
 * One job's data and options as the current tenant's: `repeat` refused, the
 * payload sealed for `queue` and `name`, the options' keys scoped.
 */
function sealOne(
  jobs: JobTenancy,
  queue: string,
  name: string,
  payload: unknown,
  opts: Record<string, unknown> | undefined,
): { data: JobEnvelope; opts: Record<string, unknown> | undefined } {
  // a copy, each value read once: the `repeat` checked is the one BullMQ gets
  const given = jobOptions(opts, "A BullMQ job's options")
  const own = given === undefined || given === null ? undefined : { ...given }
  if (own?.repeat !== undefined) throw repeatRefused()
  const data = jobs.seal(queue, payload, jobName(name))
  return { data, opts: scopeKeys(own, data.rowtenancy.tenant, jobs) }
}

/**
 * A job's name, which must be a string: BullMQ stores it as text and hands it
 * back as text, while the signature binds it as it was sealed, so a name of
 * another type would be signed as one name and checked as another (the job
 * would fail unrun).
 */
function jobName(name: unknown): string {
  if (typeof name === 'string') return name
  throw new InvalidInputError(
    `A BullMQ job's name must be a string, not ${name === null ? 'null' : typeof name}.`,
  )
}

/**
 * BullMQ job options whose keys (`jobId`, `deduplication.id`, `parent.id`) are
 * the tenant's own (see `tenantKey`): BullMQ keeps one job per id and per
 * deduplication id in a queue, so an unscoped key would let one tenant's job
 * make BullMQ drop another tenant's, or wait on it as its parent. Throws for
 * `repeatJobKey`.
 */
function scopeKeys(
  opts: Record<string, unknown> | undefined,
  tenant: string | null,
  jobs: JobTenancy,
): Record<string, unknown> | undefined {
  if (opts === undefined || opts === null) return opts
  // a copy, each value read once: what is checked here is what BullMQ gets
  let scoped = withTenantKey(opts, 'jobId', tenant, 'jobId')
  if (scoped.repeatJobKey !== undefined) {
    // BullMQ's own mark of a scheduler's run: it would tie the job to that scheduler, any tenant's
    throw new InvalidInputError(
      'The BullMQ option repeatJobKey is refused on a rowtenancy queue: use upsertJobScheduler.',
    )
  }
  // the ids of other jobs (the parent to wait on) are the tenant's own too, so a job cannot be
  // made a child of another tenant's job, hand its result to it, or hold it back
  for (const [option, what] of NESTED_KEYS) {
    const nested = scoped[option]
    if (nested === undefined || nested === null) continue
    if (typeof nested !== 'object' || Array.isArray(nested)) {
      // BullMQ reads `id` and `queue` off a function too: it would pass unscoped
      throw new InvalidInputError(
        `The BullMQ option ${option} must be an object such as { id: 'key' }, not ${nested === null ? 'null' : Array.isArray(nested) ? 'an array' : typeof nested}.`,
      )
    }
    const own = withTenantKey(nested as Record<string, unknown>, 'id', tenant, what)
    if (option === 'parent') checkParentQueue(own, tenant, jobs)
    scoped = { ...scoped, [option]: own }
  }
  return scoped
}

/**
 * Refuses a `parent.queue` holding a `/`. BullMQ names the parent by
 * `${queue}:${id}`, and a job id may hold colons, so a queue carrying the
 * start of another tenant's job id (`bull:probe:1/a:b` with the scoped id
 * `2/x` is tenant 1's `1/a:b:2/x`) would reach that job past the scoped id.
 * A queue's name (prefix, colon, name) holds no `/`; every scoped id does.
 * A cross-tenant job's parent must be on a declared cross-tenant queue: its
 * parent id is kept as given, and a tenant's job with no `jobId` has the id
 * BullMQ generated (a number, a flow's UUID), which holds no tenant.
 */
function checkParentQueue(
  parent: Record<string, unknown>,
  tenant: string | null,
  jobs: JobTenancy,
): void {
  const queue = parent.queue
  if (typeof queue !== 'string' || queue.includes('/')) {
    throw new InvalidInputError(
      `parent.queue must be the parent's queue as BullMQ names it (queue.qualifiedName: prefix, colon, name), ` +
        `not ${JSON.stringify(queue)}: a "/" there could name another tenant's job.`,
    )
  }
  if (tenant !== null) return
  // a BullMQ queue name holds no colon: it is what follows the last one
  const name = queue.slice(queue.lastIndexOf(':') + 1)
  let crossTenant: string | undefined
  try {
    crossTenant = jobs.rule(name).crossTenant
  } catch {
    crossTenant = undefined
  }
  if (crossTenant === undefined) {
    throw new InvalidInputError(
      `The parent of a cross-tenant job must be on a cross-tenant queue, not ${JSON.stringify(queue)}: ` +
        "a tenant's job BullMQ numbered has no tenant in its id, so a cross-tenant job could become its child.",
    )
  }
}

/** BullMQ options holding a job key as `id`: deduplication (`debounce` in BullMQ 5) and the parent. */
const NESTED_KEYS = [
  ['deduplication', 'deduplication.id'],
  ['debounce', 'debounce.id'],
  ['parent', 'parent.id'],
] as const

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
  if (typeof handler !== 'function') {
    throw new InvalidInputError(
      `The handler of queue ${JSON.stringify(queueName)} must be a function, not ${typeof handler}.`,
    )
  }
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
