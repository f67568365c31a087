import { tryCurrentTenant } from '../context/index.js'
import { ConfigError, MissingTenantError } from '../errors/index.js'
import {
  parseTenantId,
  type Tenant,
  type TenantIdType,
  type TenantStore,
} from '../tenants/index.js'
import {
  canonicalClone,
  canonicalCopy,
  ENVELOPE_KEY,
  type JobEnvelope,
  type JobMeta,
  type JobSigner,
  jobSigner,
  LEGACY_SIGNATURE_LENGTH,
} from './envelope.js'
import { type JobAuditOptions, jobAuditWriter } from './job-audit.js'
import { JobRejectedError } from './job-errors.js'
import { type Checked, jobProcessor, lookUpTenant, notRun, type TenantChecked } from './job-run.js'

/**
 * What happens to a job of a suspended tenant: `fail` (refused with a clear
 * error; the queue retries or dead-letters it by its rules) or `wait` (put back
 * to run again after `waitMs`, without using up an attempt).
 */
export type SuspendedPolicy = 'fail' | 'wait'

/**
 * A declared queue (a pg-boss queue, a graphile-worker task identifier, a BullMQ
 * queue). `true` declares a tenant queue with the defaults.
 *
 * @example
 * ```ts
 * const rules: Record<string, QueueRule | true> = {
 *   'send-invoice': true,
 *   'billing-rollup': { crossTenant: 'nightly billing rollup over every tenant' },
 *   'sync-crm': { suspended: 'wait' },
 * }
 * ```
 */
export interface QueueRule {
  /** Declares a cross-tenant queue: its jobs carry no tenant and run in an audited `withoutTenant(reason)`. */
  readonly crossTenant?: string | undefined
  /** Overrides the suspended-tenant policy for this queue. */
  readonly suspended?: SuspendedPolicy | undefined
  /**
   * The queues whose dead letters land here (pg-boss `deadLetter`): a dead
   * letter keeps the envelope signed for its first queue, so its signature is
   * checked against those queues too. Each must be declared, and a tenant queue
   * (or cross-tenant) as this one is.
   */
  readonly deadLetterOf?: string | readonly string[] | undefined
}

/**
 * A declared queue's rule, resolved.
 */
export interface ResolvedQueueRule {
  readonly crossTenant: string | undefined
  readonly suspended: SuspendedPolicy
  /** The queues a job of this queue may have been signed for: itself, then those it takes dead letters of. */
  readonly signedFor: readonly string[]
}

/**
 * Options of {@link createJobTenancy}.
 *
 * @example
 * ```ts
 * const jobs = createJobTenancy({
 *   store: new TenantStore({ db: adminPool }),
 *   queues: { 'send-invoice': true },
 *   secret: process.env.JOB_SECRET,
 *   audit: { db: adminPool },
 * })
 * ```
 */
export interface JobTenancyOptions {
  /** Looks up each job's tenant (exists? active?) before it runs. Its cache TTL bounds how soon a suspension is seen. */
  readonly store: TenantStore
  /** Every queue jobs may be sent to or run from; any other name is refused. */
  readonly queues: Readonly<Record<string, QueueRule | true>>
  /** Opt-in signing: with a secret every job is signed, and a job without a valid signature is refused. */
  readonly secret?: string | Uint8Array | undefined
  /**
   * Also accept the HMAC-SHA256 signatures (43 characters) of earlier releases,
   * so that jobs queued before an upgrade run; off by default. They bind no job
   * name, and a job scheduler keeps the template it was upserted with (upsert
   * it again to re-sign it): turn this off once those jobs are done.
   */
  readonly legacySignatures?: boolean | undefined
  /** The suspended-tenant policy; `fail` by default. */
  readonly suspended?: SuspendedPolicy | undefined
  /** How long a suspended tenant's job waits before its next try (`wait` policy); 60 s by default. */
  readonly waitMs?: number | undefined
  /** Records cross-tenant job runs and fan-out runs; required when a queue is cross-tenant. */
  readonly audit?: JobAuditOptions | undefined
}

/**
 * What a handler learns about its job besides the payload.
 */
export interface JobInfo {
  readonly id: string
  readonly queue: string
  /** The tenant the job runs as; `undefined` on a cross-tenant queue. */
  readonly tenantId: string | undefined
  /** 1 for the first run, 2 for the first retry...; 0 when the queue does not say (pg-boss without `includeMetadata`). */
  readonly attempt: number
}

/**
 * A job's handler: runs inside `runWithTenant(job's tenant)`, or inside an
 * audited `withoutTenant(reason)` on a cross-tenant queue.
 *
 * @example
 * ```ts
 * const handler: JobHandler<{ invoiceId: number }> = async (payload, job) => {
 *   await db.updateTable('invoices').set({ sent: true }).where('id', '=', payload.invoiceId).execute()
 * }
 * ```
 */
export type JobHandler<P = unknown, R = unknown> = (payload: P, job: JobInfo) => Promise<R> | R

/**
 * The decision on one job before it runs.
 *
 * @internal
 */
export type Admission<P = unknown> =
  | { readonly kind: 'tenant'; readonly tenant: Tenant; readonly payload: P }
  | { readonly kind: 'cross'; readonly reason: string; readonly payload: P }
  | { readonly kind: 'wait'; readonly delayMs: number; readonly error: JobRejectedError }

/**
 * The core the queue adapters share: seals a tenant into a job when it is
 * sent, and checks and opens it when it runs.
 *
 * @example
 * ```ts
 * const boss = tenantPgBoss(pgBoss, jobs)
 * await runWithTenant('7', () => boss.send('send-invoice', { invoiceId: 12 }))
 * ```
 */
export interface JobTenancy {
  /** The validated options. */
  readonly options: JobTenancyOptions
  /** The declared rule of `queue`; throws `JobRejectedError('unknown-queue')` for an undeclared one. */
  rule(queue: string): ResolvedQueueRule
  /**
   * The job data for `payload` sent to `queue` now: the current tenant in the
   * envelope (signed when a secret is set). Throws `MissingTenantError` outside
   * a tenant context unless the queue is cross-tenant. `name` is the job's name
   * where the queue keeps one beside the data (BullMQ): the signature binds it,
   * so a handler may branch on it.
   */
  seal<P>(queue: string, payload: P, name?: string): JobEnvelope<P>
  /**
   * Checks a job's data (and its `name`, as sealed) before it runs. Throws
   * `JobRejectedError` when it must not run as anyone.
   */
  admit<P = unknown>(
    queue: string,
    data: unknown,
    jobId: string,
    name?: string,
  ): Promise<Admission<P>>
  /**
   * Admits and runs one job: `handler` inside its tenant (or the audited
   * cross-tenant scope). On a `wait` decision calls `defer(delayMs)` and returns
   * `undefined` without running the handler. A refusal of the job comes back as
   * a rejection with the `JobRejectedError`, or with what `refused` makes of it
   * (an adapter's "do not retry" error); what the handler throws comes back
   * unchanged. Never throws synchronously.
   */
  process<P, R>(
    queue: string,
    data: unknown,
    job: { id: string; attempt: number; name?: string | undefined },
    handler: JobHandler<P, R>,
    defer: (delayMs: number, error: JobRejectedError) => Promise<void>,
    refused?: (error: JobRejectedError) => unknown,
  ): Promise<R | undefined>
}

const TENANT_KEYS = ['tenant_id', 'tenantId', 'tenant']

/**
 * Creates the job core for a set of declared queues. Pass it to
 * `tenantPgBoss`, `tenantTaskList` / `tenantAddJob` (graphile-worker) or
 * `tenantQueue` / `tenantProcessor` (BullMQ).
 *
 * @example
 * ```ts
 * const jobs = createJobTenancy({ store, queues: { 'send-invoice': true }, secret })
 * ```
 */
export function createJobTenancy(options: JobTenancyOptions): JobTenancy {
  const resolved = resolveOptions(options)
  const { store, signer, audit, waitMs, rules } = resolved

  const rule: JobTenancy['rule'] = (queue) => {
    const found = typeof queue === 'string' ? rules.get(queue) : undefined
    if (!found) {
      throw new JobRejectedError(
        'unknown-queue',
        `Unknown job queue ${JSON.stringify(queue)}: declare it in createJobTenancy({ queues }) ` +
          `(declared: ${[...rules.keys()].join(', ') || 'none'}).`,
      )
    }
    return found
  }

  const seal: JobTenancy['seal'] = <P>(queue: string, payload: P, name?: string) =>
    sealJob(rule(queue).crossTenant, queue, name, payload, store.idType, signer)

  const check = (queue: string, data: unknown, jobId: string, name?: string): Checked => {
    const { crossTenant, suspended, signedFor } = rule(queue)
    const { meta, payload } = openEnvelope(queue, jobId, data)
    checkSignature(signer, signedFor, name, queue, jobId, meta, payload)
    if (crossTenant !== undefined) {
      if (meta.tenant !== null) {
        throw new JobRejectedError(
          'malformed',
          `${notRun(queue, jobId)}: the queue is cross-tenant but the job names tenant ${JSON.stringify(meta.tenant)}.`,
        )
      }
      return { kind: 'cross', reason: crossTenant, payload }
    }
    if (meta.tenant === null) {
      throw new JobRejectedError(
        'no-tenant',
        `${notRun(queue, jobId)}: it carries no tenant and the queue is not cross-tenant. Send tenant jobs inside ` +
          'runWithTenant(...), or declare the queue { crossTenant: reason }.',
      )
    }
    return { kind: 'tenant', tenant: meta.tenant, suspended, payload }
  }

  const lookUp = (queue: string, jobId: string, checked: TenantChecked) =>
    lookUpTenant(store, queue, jobId, checked, waitMs)

  const admit: JobTenancy['admit'] = async <P>(
    queue: string,
    data: unknown,
    jobId: string,
    name?: string,
  ) => {
    const checked = check(queue, data, jobId, name)
    return (checked.kind === 'cross' ? checked : lookUp(queue, jobId, checked)) as Admission<P>
  }

  const processJob = jobProcessor(check, lookUp, audit)

  return Object.freeze({ options, rule, seal, admit, process: processJob })
}

/**
 * The envelope of a job: the payload (canonical JSON), the current tenant
 * (none on a cross-tenant queue) and, when the app signs jobs, the signature.
 */
function sealJob<P>(
  crossTenant: string | undefined,
  queue: string,
  name: string | undefined,
  payload: P,
  idType: TenantIdType,
  signer: JobSigner | undefined,
): JobEnvelope<P> {
  let data: P
  let text: string | undefined
  if (signer === undefined) data = canonicalCopy(payload)
  else ({ data, text } = canonicalClone(payload))
  let tenant: string | null = null
  if (crossTenant === undefined) {
    const current = tryCurrentTenant()
    if (current === undefined) {
      throw new MissingTenantError(`Enqueueing a job on queue ${JSON.stringify(queue)}`)
    }
    tenant = parseTenantId(idType, current)
    checkPayloadTenant(queue, data, tenant)
  }
  const meta: JobMeta =
    signer === undefined
      ? { v: 1, tenant }
      : { v: 1, tenant, sig: signer.sign(queue, tenant, text!, name) }
  // `rowtenancy` is ENVELOPE_KEY, written as a literal key: a computed one builds a slower object
  return { rowtenancy: meta, payload: data }
}

/** Throws when the app signs jobs and this one's signature is missing or wrong. */
function checkSignature(
  signer: JobSigner | undefined,
  signedFor: readonly string[],
  name: string | undefined,
  queue: string,
  jobId: string,
  meta: JobMeta,
  payload: unknown,
): void {
  if (signer === undefined) return
  for (const q of signedFor) if (signer.verify(q, meta.tenant, payload, meta.sig, name)) return
  if (meta.sig?.length === LEGACY_SIGNATURE_LENGTH && !signer.legacy) {
    throw new JobRejectedError(
      'bad-signature',
      `${notRun(queue, jobId)}: its signature is wrong for this release: one of ${LEGACY_SIGNATURE_LENGTH} characters is the HMAC-SHA256 of an ` +
        'earlier release, checked only with createJobTenancy({ legacySignatures: true }) (for jobs queued before the ' +
        'upgrade). It runs as no tenant; retry it once that is set, or delete it.',
    )
  }
  throw new JobRejectedError(
    'bad-signature',
    `${notRun(queue, jobId)}: its signature is ${meta.sig === undefined ? 'missing' : 'wrong'}, so it was not written by ` +
      'this app through rowtenancy (or its tenant, queue, name or payload was changed since). It runs as no tenant; ' +
      'inspect and delete it.',
  )
}

function openEnvelope(
  queue: string,
  jobId: string,
  data: unknown,
): { meta: JobMeta; payload: unknown } {
  const record = data !== null && typeof data === 'object' && !Array.isArray(data)
  const meta = record ? (data as Record<string, unknown>)[ENVELOPE_KEY] : undefined
  if (!record || meta === undefined) {
    const claimed = record ? TENANT_KEYS.find((k) => k in (data as object)) : undefined
    if (claimed !== undefined) {
      throw new JobRejectedError(
        'payload-tenant',
        `${notRun(queue, jobId)}: it has no rowtenancy envelope, and its data claims a tenant in "${claimed}". ` +
          'A tenant is taken only from the envelope written when the job is sent inside runWithTenant(...).',
      )
    }
    throw new JobRejectedError(
      'no-tenant',
      `${notRun(queue, jobId)}: it carries no tenant (no "${ENVELOPE_KEY}" envelope: sent with the bare queue client, ` +
        'or written by SQL). Send it through the rowtenancy adapter inside runWithTenant(...).',
    )
  }
  const m = meta as Record<string, unknown> | null
  if (
    m === null ||
    typeof m !== 'object' ||
    m.v !== 1 ||
    !(m.tenant === null || typeof m.tenant === 'string') ||
    !(m.sig === undefined || typeof m.sig === 'string') ||
    !onlyEnvelopeKeys(data as object)
  ) {
    throw new JobRejectedError(
      'malformed',
      `${notRun(queue, jobId)}: its "${ENVELOPE_KEY}" envelope is malformed (expected { v: 1, tenant, sig? } beside "payload" only).`,
    )
  }
  return {
    meta: m as unknown as JobMeta,
    payload: (data as Record<string, unknown>).payload ?? null,
  }
}

/** Whether `data` has no key besides the envelope's and `payload`. */
function onlyEnvelopeKeys(data: object): boolean {
  const keys = Object.keys(data)
  if (keys.length > 2) return false
  for (let i = 0; i < keys.length; i++) {
    if (keys[i] !== ENVELOPE_KEY && keys[i] !== 'payload') return false
  }
  return true
}

function checkPayloadTenant(queue: string, payload: unknown, tenant: string): void {
  if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) return
  for (const key of TENANT_KEYS) {
    const claimed = (payload as Record<string, unknown>)[key]
    if (claimed === undefined || claimed === null) continue
    if (String(claimed) !== tenant) {
      throw new JobRejectedError(
        'payload-tenant',
        `A job for queue ${JSON.stringify(queue)} sent as tenant ${JSON.stringify(tenant)} names tenant ` +
          `${JSON.stringify(String(claimed))} in its payload ("${key}"). A job runs as the tenant it was sent by; ` +
          `send it inside runWithTenant(${JSON.stringify(String(claimed))}, ...) instead, or drop "${key}".`,
      )
    }
  }
}

function resolveOptions(options: JobTenancyOptions) {
  if (options === null || typeof options !== 'object') {
    throw new ConfigError('createJobTenancy(options) needs { store, queues }.')
  }
  const { store, queues } = options
  const audit = jobAuditWriter(options.audit)
  if (!store || typeof store.get !== 'function') {
    throw new ConfigError(
      "createJobTenancy needs store: a TenantStore, to check each job's tenant.",
    )
  }
  if (queues === null || typeof queues !== 'object' || Object.keys(queues).length === 0) {
    throw new ConfigError(
      'createJobTenancy needs queues: { "<queue name>": true | { crossTenant, suspended } }.',
    )
  }
  const suspended = options.suspended ?? 'fail'
  checkPolicy(suspended, 'suspended')
  const waitMs = options.waitMs ?? 60_000
  if (!Number.isSafeInteger(waitMs) || waitMs < 0) {
    throw new ConfigError(
      `waitMs must be a non-negative integer of milliseconds, not ${String(waitMs)}.`,
    )
  }
  const rules = new Map<string, ResolvedQueueRule>()
  const deadLetters = new Map<string, readonly unknown[]>()
  for (const [name, value] of Object.entries(queues)) {
    const r: QueueRule = value === true ? {} : value
    if (r === null || typeof r !== 'object') {
      throw new ConfigError(
        `Queue ${JSON.stringify(name)}: use true or { crossTenant, suspended, deadLetterOf }.`,
      )
    }
    if (
      r.crossTenant !== undefined &&
      (typeof r.crossTenant !== 'string' || !r.crossTenant.trim())
    ) {
      throw new ConfigError(
        `Queue ${JSON.stringify(name)}: crossTenant must be the reason written to the audit log.`,
      )
    }
    if (r.crossTenant !== undefined && !audit) {
      throw new ConfigError(
        `Queue ${JSON.stringify(name)} is cross-tenant, so its runs are audited: pass audit: { db } (the audit_log it is written to).`,
      )
    }
    if (r.suspended !== undefined) checkPolicy(r.suspended, `queue ${name}: suspended`)
    if (r.deadLetterOf !== undefined) {
      deadLetters.set(name, typeof r.deadLetterOf === 'string' ? [r.deadLetterOf] : r.deadLetterOf)
    }
    rules.set(name, {
      crossTenant: r.crossTenant?.trim(),
      suspended: r.suspended ?? suspended,
      signedFor: [name],
    })
  }
  for (const [name, sources] of deadLetters) {
    const rule = rules.get(name)!
    for (const source of Array.isArray(sources) ? sources : [sources]) {
      const from = typeof source === 'string' ? rules.get(source) : undefined
      if (from === undefined || source === name) {
        throw new ConfigError(
          `Queue ${JSON.stringify(name)}: deadLetterOf names ${JSON.stringify(source)}, which is not another declared queue.`,
        )
      }
      if ((from.crossTenant === undefined) !== (rule.crossTenant === undefined)) {
        throw new ConfigError(
          `Queue ${JSON.stringify(name)} takes the dead letters of ${JSON.stringify(source)}, so both must be tenant ` +
            'queues or both cross-tenant.',
        )
      }
    }
    rules.set(name, { ...rule, signedFor: [name, ...(sources as string[])] })
  }
  let secret: Uint8Array | undefined
  if (options.secret !== undefined) {
    secret = typeof options.secret === 'string' ? Buffer.from(options.secret) : options.secret
    if (!(secret instanceof Uint8Array) || secret.length < 16) {
      throw new ConfigError(
        'secret must be at least 16 bytes (a string or Uint8Array) to sign jobs.',
      )
    }
  }
  return {
    store,
    signer: secret === undefined ? undefined : jobSigner(secret, options.legacySignatures === true),
    audit,
    waitMs,
    rules,
  }
}

function checkPolicy(value: unknown, what: string): void {
  if (value !== 'fail' && value !== 'wait') {
    throw new ConfigError(`${what} must be "fail" or "wait", not ${JSON.stringify(value)}.`)
  }
}
