// Running one job once its data is checked: the tenant looked up (from the
// store's cache when it can), then the handler run in its tenant or in the
// audited cross-tenant scope.
import { runWithTenant, withoutTenant } from '../context/index.js'
import { InvalidTenantIdError } from '../errors/index.js'
import { parseTenantId, type Tenant, TenantStore } from '../tenants/index.js'
import type { jobAuditWriter } from './job-audit.js'
import { JobRejectedError } from './job-errors.js'
import type { Admission, JobHandler, JobInfo, JobTenancy, SuspendedPolicy } from './job-tenancy.js'

/**
 * What a job's data says before its tenant is looked up: a cross-tenant job, or
 * the tenant it names (envelope and signature checked).
 *
 * @internal
 */
export type Checked =
  | { readonly kind: 'cross'; readonly reason: string; readonly payload: unknown }
  | TenantChecked

/** A checked job of a tenant queue: the tenant its envelope names. @internal */
export interface TenantChecked {
  readonly kind: 'tenant'
  readonly tenant: string
  readonly suspended: SuspendedPolicy
  readonly payload: unknown
}

/**
 * `process` of a job core: checks the job, looks its tenant up, then runs it in
 * its tenant or the audited cross-tenant scope. A job whose tenant is cached
 * makes no promise of its own besides the handler's, and the handler's promise
 * is returned as it is: with AsyncLocalStorage on, every promise (and every
 * reaction to one) runs a hook, and a fast queue runs thousands of jobs a second.
 *
 * @internal
 */
export function jobProcessor(
  check: (queue: string, data: unknown, jobId: string, name?: string) => Checked,
  lookUp: (queue: string, jobId: string, checked: TenantChecked) => Admission | Promise<Admission>,
  audit: ReturnType<typeof jobAuditWriter>,
): JobTenancy['process'] {
  const run = <R>(
    admission: Admission,
    queue: string,
    job: { id: string; attempt: number },
    handler: JobHandler<never, R>,
    defer: (delayMs: number, error: JobRejectedError) => Promise<void>,
  ): R | Promise<R | undefined> => {
    if (admission.kind === 'wait')
      return defer(admission.delayMs, admission.error).then(() => undefined)
    if (admission.kind === 'cross') return runCrossTenant(audit!, admission, queue, job, handler)
    const tenantId = admission.tenant.id
    const info: JobInfo = { id: job.id, queue, tenantId, attempt: job.attempt }
    return runWithTenant(tenantId, () => handler(admission.payload as never, info))
  }
  return (queue, data, job, handler, defer, refused) => {
    let admission: Admission | Promise<Admission>
    try {
      const checked = check(queue, data, job.id, job.name)
      admission = checked.kind === 'cross' ? checked : lookUp(queue, job.id, checked)
    } catch (err) {
      return Promise.reject(refusal(err, refused))
    }
    if (admission instanceof Promise) {
      return admission.then(
        (a) => run(a, queue, job, handler, defer),
        (err: unknown) => {
          throw refusal(err, refused)
        },
      )
    }
    try {
      return Promise.resolve(run(admission, queue, job, handler, defer))
    } catch (err) {
      return Promise.reject(err)
    }
  }
}

/** A refusal as the adapter wants it (`refused`); any other error unchanged. */
function refusal(err: unknown, refused: ((error: JobRejectedError) => unknown) | undefined) {
  return refused !== undefined && err instanceof JobRejectedError ? refused(err) : err
}

/** Runs a cross-tenant job inside `withoutTenant(reason)`, audited first. */
async function runCrossTenant<R>(
  audit: NonNullable<ReturnType<typeof jobAuditWriter>>,
  admission: Admission & { kind: 'cross' },
  queue: string,
  job: { id: string; attempt: number },
  handler: JobHandler<never, R>,
): Promise<R> {
  const info: JobInfo = { id: job.id, queue, tenantId: undefined, attempt: job.attempt }
  const actor = `job:${queue}`
  await audit.record(
    { source: 'withoutTenant', reason: admission.reason, actor, tenantId: undefined },
    `run cross-tenant job on queue ${queue}`,
    { rowCount: null },
  )
  return withoutTenant(admission.reason, () => handler(admission.payload as never, info), { actor })
}

/** The start of every refusal's message. @internal */
export function notRun(queue: string, jobId: string): string {
  return `Job ${jobId} on queue ${JSON.stringify(queue)} was not run`
}

/**
 * Looks a job's tenant up: at once when the store has it cached (most jobs),
 * else with a query. A malformed id is refused either way (the store parses it).
 *
 * @internal
 */
export function lookUpTenant(
  store: TenantStore,
  queue: string,
  jobId: string,
  checked: TenantChecked,
  waitMs: number,
): Admission | Promise<Admission> {
  let id = checked.tenant
  try {
    if (canPeek(store)) {
      const cached = store.peek(id)
      if (cached !== undefined) return admitTenant(queue, jobId, checked, cached, waitMs)
    }
    id = parseTenantId(store.idType, id)
  } catch (err) {
    if (!(err instanceof InvalidTenantIdError)) throw err
    throw new JobRejectedError('malformed', `${notRun(queue, jobId)}: ${err.message}`, {
      cause: err,
    })
  }
  return store.get(id).then((t) => admitTenant(queue, jobId, checked, t, waitMs))
}

/** Admits a job of a tenant that exists and is active; refuses (or holds) the others. */
function admitTenant(
  queue: string,
  jobId: string,
  { tenant: id, suspended, payload }: TenantChecked,
  tenant: Tenant | undefined,
  waitMs: number,
): Admission {
  if (!tenant) {
    throw new JobRejectedError(
      'unknown-tenant',
      `${notRun(queue, jobId)}: tenant ${JSON.stringify(id)} does not exist (deleted after the job was sent?). ` +
        'The queue keeps the job (retry, then failed/dead letter); delete it if the tenant is gone for good.',
    )
  }
  if (tenant.status !== 'active') {
    const error = new JobRejectedError(
      'suspended',
      `${notRun(queue, jobId)}: tenant ${JSON.stringify(tenant.slug)} (${tenant.id}) is ${tenant.status}. ` +
        (suspended === 'wait'
          ? `It is put back to run again in ${waitMs} ms.`
          : 'Reactivate the tenant and retry the job, or set { suspended: "wait" } to hold such jobs.'),
    )
    if (suspended === 'wait') return { kind: 'wait', delayMs: waitMs, error }
    throw error
  }
  return { kind: 'tenant', tenant, payload }
}

/**
 * Whether the store's cache may answer for `get`: a `TenantStore` whose `get` is
 * its own (a subclass that adds checks to `get`, or a store of another shape, is
 * always asked through `get`).
 */
function canPeek(store: TenantStore): boolean {
  return typeof store.peek === 'function' && store.get === TenantStore.prototype.get
}
