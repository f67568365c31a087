import * as crypto from 'node:crypto'
import { type Blake2sPrefix, blake2sPrefix, blake2sTag } from './blake2s.js'

const BLOCK = 64

/**
 * The start of a job's message, padded with spaces to a whole block, and the
 * hash state after the key block and it, compressed once.
 *
 * @internal
 */
export interface MacHead {
  readonly start: Uint8Array
  readonly state: Blake2sPrefix
}

/**
 * The MAC jobs are signed with: the first 22 base64url characters (132 bits) of
 * BLAKE2s-256 over a key block (the secret zero-padded to 64 bytes; a longer
 * secret is hashed to 32 bytes first, as HMAC does), the message's start padded
 * with spaces to a whole block, then the rest of the message. A prefix MAC:
 * the key as the message's first block, as BLAKE2's keyed mode does, but with
 * plain BLAKE2s-256's parameter block (keyed mode records the key's length
 * there and takes at most 32 bytes), which BLAKE2's finalization flag keeps
 * safe from length extension. Node's native `blake2s256` computes the same
 * bytes, and does so for a rest too long or not ASCII for the JavaScript
 * compression. The start must be self-delimiting (it ends at its last
 * newline), so the padding cannot run into the rest.
 *
 * @internal
 */
export function jobMac(secret: Uint8Array): {
  head(text: string): MacHead
  /** The tag of the message: `head`'s start, then `lead`, then `text`. */
  tag(head: MacHead, text: string, lead?: string): string
} {
  const keyBlock = new Uint8Array(BLOCK)
  keyBlock.set(secret.length > BLOCK ? crypto.hash('blake2s256', secret, 'buffer') : secret)
  return {
    head(text) {
      const utf8 = Buffer.from(text, 'utf8')
      const prefix = Buffer.alloc(BLOCK + Math.ceil(utf8.length / BLOCK) * BLOCK, 0x20)
      prefix.set(keyBlock)
      prefix.set(utf8, BLOCK)
      // the key block is kept once, here, not in every head
      return { start: Uint8Array.prototype.slice.call(prefix, BLOCK), state: blake2sPrefix(prefix) }
    },
    tag(head, text, lead = '') {
      return (
        blake2sTag(head.state, text, lead) ??
        crypto
          .hash(
            'blake2s256',
            Buffer.concat([keyBlock, head.start, Buffer.from(lead + text, 'utf8')]),
            'base64url',
          )
          .slice(0, 22)
      )
    },
  }
}
