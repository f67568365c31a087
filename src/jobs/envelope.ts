import { createHmac, timingSafeEqual } from 'node:crypto'

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
 */
export interface JobMeta {
  readonly v: 1
  /** The tenant id (canonical text), or `null` on a cross-tenant queue. */
  readonly tenant: string | null
  /** HMAC-SHA256 (base64url) of version, queue, tenant and canonical payload, when signing is on. */
  readonly sig?: string | undefined
}

/**
 * A job's data as rowtenancy writes it.
 */
export interface JobEnvelope<P = unknown> {
  readonly rowtenancy: JobMeta
  readonly payload: P
}

/**
 * The payload as the queue will hand it back (one JSON round trip: `undefined`
 * becomes `null`, dates become strings) and its canonical JSON text, from a
 * single serialization.
 *
 * @internal
 */
export function canonicalClone<P>(payload: P): { data: P; text: string } {
  const text = canonicalJson(payload)
  return { data: JSON.parse(text) as P, text }
}

/** Puts an object's keys in sorted order (a copy only when they are not already). */
function sortKeys(_key: string, value: unknown): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value
  const keys = Object.keys(value)
  let sorted = true
  for (let i = 1; i < keys.length && sorted; i++) sorted = keys[i - 1]! < keys[i]!
  if (sorted) return value
  const copy: Record<string, unknown> = {}
  for (const key of keys.sort()) copy[key] = (value as Record<string, unknown>)[key]
  return copy
}

/**
 * JSON with object keys in one order whatever order they came in (sorted, the
 * engine putting integer-like keys first), so a payload signs the same after
 * jsonb (which reorders keys) gave it back. `toJSON` and `undefined` are handled
 * as `JSON.stringify` does.
 *
 * @internal
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, sortKeys) ?? 'null'
}

/** The HMAC-SHA256 of one job: version, queue and tenant (as a JSON pair, unambiguous), then the payload. */
function jobDigest(secret: Uint8Array, queue: string, tenant: string | null, text: string): Buffer {
  return createHmac('sha256', secret)
    .update(`rowtenancy-job/v1\n${JSON.stringify([queue, tenant])}\n`)
    .update(text)
    .digest()
}

/**
 * The signature of one job (base64url): binds the tenant to the queue and the
 * exact payload, so a signed envelope copied onto another payload or queue does
 * not verify. `text` is the payload's {@link canonicalJson}.
 *
 * @internal
 */
export function signJob(
  secret: Uint8Array,
  queue: string,
  tenant: string | null,
  text: string,
): string {
  return jobDigest(secret, queue, tenant, text).toString('base64url')
}

const SIGNATURE_LENGTH = 43 // 32 bytes in unpadded base64url

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
  if (typeof sig !== 'string' || sig.length !== SIGNATURE_LENGTH) return false
  const given = Buffer.from(sig, 'base64url')
  if (given.length !== 32) return false
  return timingSafeEqual(jobDigest(secret, queue, tenant, canonicalJson(payload)), given)
}
