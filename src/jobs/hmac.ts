import * as crypto from 'node:crypto'

/** Messages up to this many UTF-16 units take the fast path (their UTF-8 fits the buffer). */
const FAST_CHARS = 2048
/** Text up to this long is copied into the buffer by a loop while it is ASCII; longer by `Buffer.write`. */
const LOOP_CHARS = 256
const BLOCK = 64

/**
 * HMAC-SHA256 (RFC 2104) of messages under one key, as base64url. A job's
 * message is short, and there `createHmac` costs mostly its own objects (a
 * stream and a native handle per call) and each call into Node's native code
 * costs more than the hashing, the more so on a busy queue whose other work
 * leaves the caches cold. So the key's two padded blocks are prepared once, and
 * a message of up to {@link FAST_CHARS} characters takes two native calls, the
 * two one-shot `crypto.hash` (the floor for HMAC with node:crypto; `Hash.copy()`
 * of prepared key states and a one-iteration `pbkdf2Sync` are slower:
 * `bench/jobs-signing.ts`): the message's bytes are copied into a reused buffer
 * in JavaScript (short ASCII text by a loop, a `head` given as UTF-8 bytes by
 * `set`), and so is the inner digest. A longer message goes through
 * `createHmac`. Both give the same bytes. The message may come in two parts
 * (`head` then `tail`), one after the other in the buffer, so the caller need
 * not join them into a new string first; a text part is encoded as UTF-8 on its
 * own (a `head` ending in half a surrogate pair would not join the other half).
 *
 * @internal
 */
export function hmacSha256(
  secret: Uint8Array,
): (head: string | Uint8Array, tail?: string) => string {
  const keyBlock = new Uint8Array(BLOCK)
  keyBlock.set(secret.length > BLOCK ? crypto.createHash('sha256').update(secret).digest() : secret)
  // inner: (key ^ ipad) then the message; outer: (key ^ opad) then the inner digest
  const inner = Buffer.alloc(BLOCK + FAST_CHARS * 3)
  const outer = Buffer.alloc(BLOCK + 32)
  for (let i = 0; i < BLOCK; i++) {
    inner[i] = keyBlock[i]! ^ 0x36
    outer[i] = keyBlock[i]! ^ 0x5c
  }
  /**
   * Views of `inner` by length, so a message's bytes are hashed without a new
   * Buffer per call (sized up front: an array written at scattered high indexes
   * would turn into a slower dictionary).
   */
  const views: (Buffer | undefined)[] = Array.from({ length: inner.length + 1 })
  const key = crypto.createSecretKey(secret)
  /** Writes `text` as UTF-8 at `at`; returns where it ends. */
  const put = (text: string, at: number): number => {
    if (text.length <= LOOP_CHARS) {
      let i = 0
      for (; i < text.length; i++) {
        const c = text.charCodeAt(i)
        if (c >= 0x80) break
        inner[at + i] = c
      }
      if (i === text.length) return at + i
    }
    return at + inner.write(text, at, 'utf8')
  }
  return (head, tail = '') => {
    if (head.length + tail.length > FAST_CHARS) {
      return crypto.createHmac('sha256', key).update(head).update(tail).digest('base64url')
    }
    let length: number
    if (typeof head === 'string') length = put(head, BLOCK)
    else {
      inner.set(head, BLOCK)
      length = BLOCK + head.length
    }
    if (tail.length > 0) length = put(tail, length)
    let view = views[length]
    if (view === undefined) view = views[length] = inner.subarray(0, length)
    const digest = crypto.hash('sha256', view, 'binary')
    for (let i = 0; i < 32; i++) outer[BLOCK + i] = digest.charCodeAt(i)
    return crypto.hash('sha256', outer, 'base64url')
  }
}
