/**
 * BLAKE2s-256 (RFC 7693, unkeyed, 32-byte digest) in JavaScript, resumable after
 * a prefix of whole 64-byte blocks, for the short messages jobs are signed with.
 * A job's message is a few dozen bytes, and there one call into Node's native
 * hashing costs more than the hashing itself, several times more when the rest
 * of a busy queue's work has left the caches cold; one compression in
 * JavaScript does not cross into native code. The prefix (the key block and the
 * queue's and tenant's part of the message) is compressed once and kept, so a
 * small payload costs one compression. Gives the bytes of Node's
 * `crypto.hash('blake2s256', prefix + text)`, which signs what this does not take.
 *
 * @internal
 */

const IV = Int32Array.of(
  0x6a09e667,
  0xbb67ae85 | 0,
  0x3c6ef372,
  0xa54ff53a | 0,
  0x510e527f,
  0x9b05688c | 0,
  0x1f83d9ab,
  0x5be0cd19,
)

/** The message word order of each of the ten rounds. */
// biome-ignore format: one round a line
const SIGMA = Uint8Array.of(
  0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
  14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3,
  11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4,
  7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8,
  9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13,
  2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9,
  12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11,
  13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10,
  6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5,
  10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0,
)

/** The longest text {@link blake2sTag} hashes here (four blocks); longer text is the caller's to hash natively. */
export const BLAKE2S_JS_CHARS = 256

/** The block being compressed, as 16 little-endian words. */
const m = new Int32Array(16)
/** The chaining value while a message is hashed. */
const h = new Int32Array(8)
/** The digest's first 17 bytes (little-endian words, whatever the platform's byte order). */
const digest = new Uint8Array(17)
const BASE64URL = Uint8Array.from(
  'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_',
  (c) => c.charCodeAt(0),
)
const tagCodes: number[] = Array.from({ length: 22 }, () => 0)

/** One compression of the block in `m` into `h`; `t` counts the bytes hashed so far, this block's included. */
function compress(t: number, last: boolean): void {
  let v0 = h[0]!
  let v1 = h[1]!
  let v2 = h[2]!
  let v3 = h[3]!
  let v4 = h[4]!
  let v5 = h[5]!
  let v6 = h[6]!
  let v7 = h[7]!
  let v8 = IV[0]!
  let v9 = IV[1]!
  let v10 = IV[2]!
  let v11 = IV[3]!
  let v12 = IV[4]! ^ t
  let v13 = IV[5]!
  let v14 = last ? ~IV[6]! : IV[6]!
  let v15 = IV[7]!
  for (let s = 0; s < 160; s += 16) {
    // G(v0, v4, v8, v12), G(v1, v5, v9, v13), G(v2, v6, v10, v14), G(v3, v7, v11, v15),
    // then the diagonals G(v0, v5, v10, v15), G(v1, v6, v11, v12), G(v2, v7, v8, v13), G(v3, v4, v9, v14)
    v0 = (v0 + v4 + m[SIGMA[s]!]!) | 0
    v12 ^= v0
    v12 = (v12 >>> 16) | (v12 << 16)
    v8 = (v8 + v12) | 0
    v4 ^= v8
    v4 = (v4 >>> 12) | (v4 << 20)
    v0 = (v0 + v4 + m[SIGMA[s + 1]!]!) | 0
    v12 ^= v0
    v12 = (v12 >>> 8) | (v12 << 24)
    v8 = (v8 + v12) | 0
    v4 ^= v8
    v4 = (v4 >>> 7) | (v4 << 25)
    v1 = (v1 + v5 + m[SIGMA[s + 2]!]!) | 0
    v13 ^= v1
    v13 = (v13 >>> 16) | (v13 << 16)
    v9 = (v9 + v13) | 0
    v5 ^= v9
    v5 = (v5 >>> 12) | (v5 << 20)
    v1 = (v1 + v5 + m[SIGMA[s + 3]!]!) | 0
    v13 ^= v1
    v13 = (v13 >>> 8) | (v13 << 24)
    v9 = (v9 + v13) | 0
    v5 ^= v9
    v5 = (v5 >>> 7) | (v5 << 25)
    v2 = (v2 + v6 + m[SIGMA[s + 4]!]!) | 0
    v14 ^= v2
    v14 = (v14 >>> 16) | (v14 << 16)
    v10 = (v10 + v14) | 0
    v6 ^= v10
    v6 = (v6 >>> 12) | (v6 << 20)
    v2 = (v2 + v6 + m[SIGMA[s + 5]!]!) | 0
    v14 ^= v2
    v14 = (v14 >>> 8) | (v14 << 24)
    v10 = (v10 + v14) | 0
    v6 ^= v10
    v6 = (v6 >>> 7) | (v6 << 25)
    v3 = (v3 + v7 + m[SIGMA[s + 6]!]!) | 0
    v15 ^= v3
    v15 = (v15 >>> 16) | (v15 << 16)
    v11 = (v11 + v15) | 0
    v7 ^= v11
    v7 = (v7 >>> 12) | (v7 << 20)
    v3 = (v3 + v7 + m[SIGMA[s + 7]!]!) | 0
    v15 ^= v3
    v15 = (v15 >>> 8) | (v15 << 24)
    v11 = (v11 + v15) | 0
    v7 ^= v11
    v7 = (v7 >>> 7) | (v7 << 25)
    v0 = (v0 + v5 + m[SIGMA[s + 8]!]!) | 0
    v15 ^= v0
    v15 = (v15 >>> 16) | (v15 << 16)
    v10 = (v10 + v15) | 0
    v5 ^= v10
    v5 = (v5 >>> 12) | (v5 << 20)
    v0 = (v0 + v5 + m[SIGMA[s + 9]!]!) | 0
    v15 ^= v0
    v15 = (v15 >>> 8) | (v15 << 24)
    v10 = (v10 + v15) | 0
    v5 ^= v10
    v5 = (v5 >>> 7) | (v5 << 25)
    v1 = (v1 + v6 + m[SIGMA[s + 10]!]!) | 0
    v12 ^= v1
    v12 = (v12 >>> 16) | (v12 << 16)
    v11 = (v11 + v12) | 0
    v6 ^= v11
    v6 = (v6 >>> 12) | (v6 << 20)
    v1 = (v1 + v6 + m[SIGMA[s + 11]!]!) | 0
    v12 ^= v1
    v12 = (v12 >>> 8) | (v12 << 24)
    v11 = (v11 + v12) | 0
    v6 ^= v11
    v6 = (v6 >>> 7) | (v6 << 25)
    v2 = (v2 + v7 + m[SIGMA[s + 12]!]!) | 0
    v13 ^= v2
    v13 = (v13 >>> 16) | (v13 << 16)
    v8 = (v8 + v13) | 0
    v7 ^= v8
    v7 = (v7 >>> 12) | (v7 << 20)
    v2 = (v2 + v7 + m[SIGMA[s + 13]!]!) | 0
    v13 ^= v2
    v13 = (v13 >>> 8) | (v13 << 24)
    v8 = (v8 + v13) | 0
    v7 ^= v8
    v7 = (v7 >>> 7) | (v7 << 25)
    v3 = (v3 + v4 + m[SIGMA[s + 14]!]!) | 0
    v14 ^= v3
    v14 = (v14 >>> 16) | (v14 << 16)
    v9 = (v9 + v14) | 0
    v4 ^= v9
    v4 = (v4 >>> 12) | (v4 << 20)
    v3 = (v3 + v4 + m[SIGMA[s + 15]!]!) | 0
    v14 ^= v3
    v14 = (v14 >>> 8) | (v14 << 24)
    v9 = (v9 + v14) | 0
    v4 ^= v9
    v4 = (v4 >>> 7) | (v4 << 25)
  }
  h[0] = h[0]! ^ v0 ^ v8
  h[1] = h[1]! ^ v1 ^ v9
  h[2] = h[2]! ^ v2 ^ v10
  h[3] = h[3]! ^ v3 ^ v11
  h[4] = h[4]! ^ v4 ^ v12
  h[5] = h[5]! ^ v5 ^ v13
  h[6] = h[6]! ^ v6 ^ v14
  h[7] = h[7]! ^ v7 ^ v15
}

/**
 * The state of BLAKE2s-256 after a prefix of whole blocks.
 *
 * @internal
 */
export interface Blake2sPrefix {
  readonly h: Int32Array
  /** The prefix's length in bytes. */
  readonly t: number
}

/**
 * Compresses `prefix` (a non-empty multiple of 64 bytes) once, to go on from.
 *
 * @internal
 */
export function blake2sPrefix(prefix: Uint8Array): Blake2sPrefix {
  if (prefix.length === 0 || prefix.length % 64 !== 0) {
    throw new RangeError('a BLAKE2s prefix is a non-empty whole number of 64-byte blocks')
  }
  h.set(IV)
  h[0] = h[0]! ^ 0x01010020 // digest length 32, no key, fanout 1, depth 1
  for (let at = 0; at < prefix.length; at += 64) {
    for (let i = 0; i < 16; i++) {
      const b = at + 4 * i
      m[i] = prefix[b]! | (prefix[b + 1]! << 8) | (prefix[b + 2]! << 16) | (prefix[b + 3]! << 24)
    }
    compress(at + 64, false)
  }
  return { h: h.slice(), t: prefix.length }
}

/**
 * The first 22 characters (132 bits) of the base64url BLAKE2s-256 digest of
 * `prefix`, then `lead`, then `text` (two parts, so the caller need not join
 * them), when they are ASCII of 1 to {@link BLAKE2S_JS_CHARS} characters in
 * all; else `undefined`, and the caller hashes with
 * `crypto.hash('blake2s256', ...)`, which gives the same.
 *
 * @internal
 */
export function blake2sTag(prefix: Blake2sPrefix, text: string, lead = ''): string | undefined {
  const split = lead.length
  const n = split + text.length
  if (n === 0 || n > BLAKE2S_JS_CHARS) return undefined
  h.set(prefix.h)
  for (let at = 0; at < n; at += 64) {
    m.fill(0)
    const end = Math.min(at + 64, n)
    for (let k = at; k < end; k++) {
      const c = k < split ? lead.charCodeAt(k) : text.charCodeAt(k - split)
      if (c >= 0x80) return undefined
      const w = (k - at) >> 2
      m[w] = m[w]! | (c << ((k & 3) << 3))
    }
    compress(prefix.t + end, end === n)
  }
  for (let i = 0; i < 17; i++) digest[i] = (h[i >> 2]! >>> ((i & 3) << 3)) & 0xff
  let j = 0
  for (let i = 0; i < 15; i += 3) {
    const v = (digest[i]! << 16) | (digest[i + 1]! << 8) | digest[i + 2]!
    tagCodes[j++] = BASE64URL[v >>> 18]!
    tagCodes[j++] = BASE64URL[(v >>> 12) & 63]!
    tagCodes[j++] = BASE64URL[(v >>> 6) & 63]!
    tagCodes[j++] = BASE64URL[v & 63]!
  }
  const v = (digest[15]! << 16) | (digest[16]! << 8)
  tagCodes[j++] = BASE64URL[v >>> 18]!
  tagCodes[j] = BASE64URL[(v >>> 12) & 63]!
  return String.fromCharCode.apply(null, tagCodes)
}
