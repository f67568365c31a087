import { createHash, createHmac, timingSafeEqual } from 'node:crypto'

/**
 * The reserved key under which rowtenancy keeps a job's tenant, beside the
 * user's payload: `{ rowtenancy: { v, tenant, sig? }, payload }`. pg-boss,
 * graphile-worker and BullMQ have no per-job metadata field, so the envelope is
 * the job's data, and the user's data is never mixed with the tenant.
 *
 * @example
 * ```ts
 * // what pg-boss stores in pgboss.job.data for a job sent in tenant 7's context
 * // {"rowtenancy": {"v": 1, "tenant": "7", "sig": "Zk1..."}, "payload": {"invoiceId": 12}}
 * ```
 */
export const ENVELOPE_KEY = 'rowtenancy'

/**
 * The tenant part of a job envelope.
 *
 * @example
 * ```ts
 * const meta: JobMeta = { v: 1, tenant: '7' }
 * ```
 */
export interface JobMeta {
  readonly v: 1
  /** The tenant id (canonical text), or `null` on a cross-tenant queue. */
  readonly tenant: string | null
  /** HMAC-SHA256 (base64url) of version, queue, tenant and payload, when signing is on. */
  readonly sig?: string | undefined
}

/**
 * A job's data as rowtenancy writes it.
 *
 * @example
 * ```ts
 * const data: JobEnvelope<{ invoiceId: number }> = { rowtenancy: { v: 1, tenant: '7' }, payload: { invoiceId: 12 } }
 * ```
 */
export interface JobEnvelope<P = unknown> {
  readonly rowtenancy: JobMeta
  readonly payload: P
}

/**
 * The payload after a JSON round trip, as the queue will hand it back
 * (`undefined` becomes `null`, dates become strings).
 *
 * @internal
 */
export function jsonClone<P>(payload: P): P {
  if (payload === undefined) return null as P
  return JSON.parse(JSON.stringify(payload)) as P
}

/**
 * JSON with object keys sorted at every level, so a payload signs the same
 * after jsonb (which reorders keys) gave it back.
 *
 * @internal
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null'
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  const keys = Object.keys(value).sort()
  const parts: string[] = []
  for (const key of keys) {
    const v = (value as Record<string, unknown>)[key]
    if (v === undefined) continue
    parts.push(`${JSON.stringify(key)}:${canonicalJson(v)}`)
  }
  return `{${parts.join(',')}}`
}

/**
 * The signature of one job: binds the tenant to the queue and the exact payload,
 * so a signed envelope copied onto another payload or queue does not verify.
 *
 * @internal
 */
export function signJob(
  secret: Uint8Array,
  queue: string,
  tenant: string | null,
  payload: unknown,
): string {
  const digest = createHash('sha256').update(canonicalJson(payload)).digest('base64url')
  return createHmac('sha256', secret)
    .update(`rowtenancy-job/v1\n${queue}\n${tenant ?? ''}\n${digest}`)
    .digest('base64url')
}

/**
 * Compares a claimed signature with the expected one in constant time.
 *
 * @internal
 */
export function verifyJob(
  secret: Uint8Array,
  queue: string,
  tenant: string | null,
  payload: unknown,
  sig: unknown,
): boolean {
  if (typeof sig !== 'string' || sig.length === 0 || sig.length > 128) return false
  const expected = Buffer.from(signJob(secret, queue, tenant, payload))
  const given = Buffer.from(sig)
  return expected.length === given.length && timingSafeEqual(expected, given)
}
