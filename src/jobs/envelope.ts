import { hmacSha256 } from './hmac.js'
import { jobMac, type MacHead } from './job-mac.js'

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
  /** The MAC (base64url) of version, queue, tenant and canonical payload, when signing is on. */
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
 * becomes `null`, dates become strings) and its canonical JSON text. Plain data
 * with keys in order (most payloads) is copied directly, which gives what the
 * round trip would at a fraction of `JSON.parse`'s cost.
 *
 * @internal
 */
export function canonicalClone<P>(payload: P): { data: P; text: string } {
  const copy = plainCopy(payload, 0)
  if (copy !== NOT_PLAIN) return { data: copy as P, text: JSON.stringify(copy) }
  const text = canonicalJson(payload)
  return { data: JSON.parse(text) as P, text }
}

/**
 * The data of {@link canonicalClone} without its text, for an envelope that is
 * not signed.
 *
 * @internal
 */
export function canonicalCopy<P>(payload: P): P {
  const copy = plainCopy(payload, 0)
  return (copy !== NOT_PLAIN ? copy : JSON.parse(canonicalJson(payload))) as P
}

const NOT_PLAIN = Symbol('not plain')

/**
 * A copy of `value` equal to `JSON.parse(canonicalJson(value))`, when `value` is
 * plain JSON data (strings, booleans, null, finite numbers other than -0, plain
 * objects and arrays, no `toJSON`, no holes) whose object keys are in canonical
 * order; else {@link NOT_PLAIN}, and the caller takes the JSON round trip.
 */
function plainCopy(value: unknown, depth: number): unknown {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value
    case 'number':
      return Number.isFinite(value) && !Object.is(value, -0) ? value : NOT_PLAIN
    case 'object':
      break
    default:
      return NOT_PLAIN
  }
  if (value === null) return null
  if (depth > 64 || typeof (value as { toJSON?: unknown }).toJSON === 'function') return NOT_PLAIN
  if (Array.isArray(value)) {
    const copy: unknown[] = []
    for (let i = 0; i < value.length; i++) {
      const item = plainCopy(value[i], depth + 1)
      if (item === NOT_PLAIN) return NOT_PLAIN
      copy.push(item)
    }
    return copy
  }
  const proto = Object.getPrototypeOf(value)
  if (proto !== Object.prototype && proto !== null) return NOT_PLAIN
  const keys = Object.keys(value)
  const copy: Record<string, unknown> = {}
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!
    // "__proto__" would set the copy's prototype, not a key
    if ((i > 0 && !(keys[i - 1]! < key)) || key === '__proto__') return NOT_PLAIN
    const item = plainCopy((value as Record<string, unknown>)[key], depth + 1)
    if (item === NOT_PLAIN) return NOT_PLAIN
    copy[key] = item
  }
  return copy
}

/** Puts an object's keys in sorted order (a copy only when they are not already). */
function sortKeys(_key: string, value: unknown): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value
  const keys = Object.keys(value)
  let sorted = true
  for (let i = 1; i < keys.length && sorted; i++) sorted = keys[i - 1]! < keys[i]!
  if (sorted) return value
  // No prototype: a "__proto__" key (JSON.parse makes it an own key) stays a key, signed.
  const copy: Record<string, unknown> = Object.create(null)
  for (const key of keys.sort()) copy[key] = (value as Record<string, unknown>)[key]
  return copy
}

/**
 * JSON with object keys in one order whatever order they came in (sorted, the
 * engine putting integer-like keys first), so a payload signs the same after
 * jsonb (which reorders keys) gave it back. `toJSON` and `undefined` are handled
 * as `JSON.stringify` does. Plain data whose keys are in order already (most
 * payloads, and every one a queue stored as JSON text hands back) takes
 * `JSON.stringify`'s fast path, which gives the same text without calling a
 * replacer for every value.
 *
 * @internal
 */
export function canonicalJson(value: unknown): string {
  return (inOrder(value, 0) ? JSON.stringify(value) : JSON.stringify(value, sortKeys)) ?? 'null'
}

/**
 * Whether `JSON.stringify(value)` is already canonical: no `toJSON` anywhere (its
 * result could be out of order) and every object's keys in {@link sortKeys}'
 * order. Deep or cyclic data is left to the replacer (which reports a cycle).
 */
function inOrder(value: unknown, depth: number): boolean {
  if (value === null || typeof value !== 'object') return typeof value !== 'bigint'
  if (depth > 64 || typeof (value as { toJSON?: unknown }).toJSON === 'function') return false
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) if (!inOrder(value[i], depth + 1)) return false
    return true
  }
  const keys = Object.keys(value)
  for (let i = 0; i < keys.length; i++) {
    if (i > 0 && !(keys[i - 1]! < keys[i]!)) return false
    if (!inOrder((value as Record<string, unknown>)[keys[i]!], depth + 1)) return false
  }
  return true
}

/**
 * Signs and checks jobs with one app secret: {@link jobMac} of
 * `rowtenancy-job/v2\n`, the JSON pair `[queue, tenant]` (unambiguous) and
 * `\n` as the message's start, then, for a job with a name beside its data
 * (BullMQ's), the name as a JSON string and `\n`, then the payload's
 * {@link canonicalJson} (which holds no newline, so a name cannot pass for a
 * payload). It binds the tenant to the queue, the name and the exact payload,
 * so a signed envelope copied onto another payload, name or queue does not
 * verify. With `legacy`, a 43-character signature is checked as the
 * HMAC-SHA256 of `rowtenancy-job/v1\n[queue, tenant]\n` and the payload, which
 * earlier releases wrote; it binds no name.
 *
 * Signatures are told apart by length: 22 characters this MAC, 43 the legacy
 * one; another form must take another length.
 *
 * @internal
 */
export interface JobSigner {
  /** The signature of a job whose payload's canonical JSON is `text`. */
  sign(queue: string, tenant: string | null, text: string, name?: string): string
  /**
   * Whether `sig` is the signature of this job: of the payload's JSON as it
   * is, or, when its keys are out of canonical order (jsonb reorders them), of
   * its canonical JSON. Compared in constant time.
   */
  verify(
    queue: string,
    tenant: string | null,
    payload: unknown,
    sig: unknown,
    name?: string,
  ): boolean
  /** Whether the HMAC-SHA256 signatures of earlier releases are checked (else refused). */
  readonly legacy: boolean
}

const SIGNATURE_LENGTH = 22 // 132 bits of BLAKE2s-256 in base64url
/**
 * The length of the HMAC-SHA256 signatures of earlier releases (32 bytes in
 * unpadded base64url), told apart from the current ones by it.
 *
 * @internal
 */
export const LEGACY_SIGNATURE_LENGTH = 43

/**
 * A {@link JobSigner} for `secret`; with `legacy`, the HMAC-SHA256 signatures
 * of earlier releases verify too.
 *
 * @internal
 */
export function jobSigner(secret: Uint8Array, legacy = false): JobSigner {
  const mac = jobMac(secret)
  const v1 = legacy ? hmacSha256(secret) : undefined
  /**
   * The message's start per queue, then per tenant: kept for tenants this
   * signer signed for or verified a job of, never for a tenant named only by an
   * unverified job.
   */
  const heads = new Map<string, Map<string | null, MacHead>>()
  const pair = (queue: string, tenant: string | null) => JSON.stringify([queue, tenant])
  const build = (queue: string, tenant: string | null) =>
    mac.head(`rowtenancy-job/v2\n${pair(queue, tenant)}\n`)
  const remember = (queue: string, tenant: string | null, head: MacHead) => {
    let byTenant = heads.get(queue)
    if (byTenant === undefined) {
      // queues are the declared few; a bound all the same
      if (heads.size >= 1000) return
      byTenant = new Map()
      heads.set(queue, byTenant)
    }
    if (byTenant.size < MAX_HEADS) byTenant.set(tenant, head)
  }
  /** What comes between the message's start and the payload: the job's name, when it has one. */
  const lead = (name: string | undefined) => (name === undefined ? '' : `${JSON.stringify(name)}\n`)
  /** Whether `sig` signs this job's payload under the message start `tagOf` takes. */
  const signs = (tagOf: (text: string) => string, payload: unknown, sig: string) => {
    // A payload a queue kept as JSON text comes back with its keys in the signed order, so
    // its JSON is the signed text; one whose keys a queue reordered (jsonb) needs sorting.
    if (sameText(tagOf(JSON.stringify(payload) ?? 'null'), sig)) return true
    return !inOrder(payload, 0) && sameText(tagOf(canonicalJson(payload)), sig)
  }
  return {
    legacy,
    sign(queue, tenant, text, name) {
      let head = heads.get(queue)?.get(tenant)
      if (head === undefined) {
        head = build(queue, tenant)
        remember(queue, tenant, head)
      }
      return mac.tag(head, text, lead(name))
    },
    verify(queue, tenant, payload, sig, name) {
      if (typeof sig !== 'string') return false
      if (sig.length === LEGACY_SIGNATURE_LENGTH && v1 !== undefined) {
        const start = Buffer.from(`rowtenancy-job/v1\n${pair(queue, tenant)}\n`)
        return signs((text) => v1(start, text), payload, sig)
      }
      if (sig.length !== SIGNATURE_LENGTH) return false
      const cached = heads.get(queue)?.get(tenant)
      const head = cached ?? build(queue, tenant)
      const before = lead(name)
      const valid = signs((text) => mac.tag(head, text, before), payload, sig)
      if (valid && cached === undefined) remember(queue, tenant, head)
      return valid
    },
  }
}

/** How many tenants' message starts one queue keeps (beyond that they are built per job). */
const MAX_HEADS = 10_000

/** Compares two strings of the same length in time that does not depend on where they differ. */
function sameText(expected: string, given: string): boolean {
  let diff = expected.length ^ given.length
  for (let i = 0; i < expected.length; i++) diff |= expected.charCodeAt(i) ^ given.charCodeAt(i)
  return diff === 0
}
