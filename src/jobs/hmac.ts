import * as crypto from 'node:crypto'

/** Messages up to this many UTF-16 units take the fast path (their UTF-8 fits the buffer). */
const FAST_CHARS = 2048
const BLOCK = 64

/**
 * HMAC-SHA256 (RFC 2104) of text messages under one key, as base64url. A job's
 * message is short, and there `createHmac` costs mostly its own objects (a
 * stream and a native handle per call, about 1.4 µs, and work for the garbage
 * collector). So the key's two padded blocks are prepared once, and a message
 * of up to {@link FAST_CHARS} characters is hashed with two one-shot
 * `crypto.hash` calls over reused buffers (about 0.6-0.7 µs; one such call is
 * ~0.2 µs, so two are the floor for HMAC with node:crypto; `Hash.copy()` of
 * prepared key states and a one-iteration `pbkdf2Sync` are slower:
 * `bench/jobs-signing.ts`); a longer one goes through `createHmac`. Both give
 * the same bytes. The message may come in two
 * parts (`head` then `tail`), written one after the other into the buffer, so
 * the caller need not join them into a new string first; each part is encoded
 * as UTF-8 on its own (a `head` ending in half a surrogate pair would not join
 * the other half).
 *
 * @internal
 */
export function hmacSha256(secret: Uint8Array): (head: string, tail?: string) => string {
  const keyBlock = new Uint8Array(BLOCK)
  keyBlock.set(secret.length > BLOCK ? crypto.createHash('sha256').update(secret).digest() : secret)
  // inner: (key ^ ipad) then the message; outer: (key ^ opad) then the inner digest
  const inner = Buffer.alloc(BLOCK + FAST_CHARS * 3)
  const outer = Buffer.alloc(BLOCK + 32)
  for (let i = 0; i < BLOCK; i++) {
    inner[i] = keyBlock[i]! ^ 0x36
    outer[i] = keyBlock[i]! ^ 0x5c
  }
  /** Views of `inner` by length, so a message's bytes are hashed without a new Buffer per call. */
  const views: Buffer[] = []
  const key = crypto.createSecretKey(secret)
  return (head, tail = '') => {
    if (head.length + tail.length > FAST_CHARS) {
      return crypto.createHmac('sha256', key).update(head).update(tail).digest('base64url')
    }
    let length = BLOCK + inner.write(head, BLOCK, 'utf8')
    if (tail.length > 0) length += inner.write(tail, length, 'utf8')
    let view = views[length]
    if (view === undefined) view = views[length] = inner.subarray(0, length)
    outer.write(crypto.hash('sha256', view, 'binary'), BLOCK, 'binary')
    return crypto.hash('sha256', outer, 'base64url')
  }
}
