import * as crypto from 'node:crypto'
import { type Blake2sPrefix, blake2sPrefix, blake2sTag } from './blake2s.js'

const BLOCK = 64

/**
 * The start of a job's message with the key before it, compressed once: the
 * key block, then the start, padded with spaces to a whole block.
 *
 * @internal
 */
export interface MacHead {
  readonly bytes: Uint8Array
  readonly state: Blake2sPrefix
}

/**
 * The MAC jobs are signed with: the first 22 base64url characters (132 bits) of
 * BLAKE2s-256 over a key block (the secret zero-padded to 64 bytes; a longer
 * secret is hashed first), the message's start padded with spaces to a whole
 * block, then the payload's JSON. This is BLAKE2's own keyed construction (the
 * key as the first block of the message), which its finalization flag keeps
 * safe from length extension; the parameter block is plain BLAKE2s-256's, so
 * Node's native `blake2s256` computes the same bytes for a payload too long or
 * not ASCII for the JavaScript compression. The start (`head`) must be
 * self-delimiting (it ends at its first newline after the version line), so the
 * padding cannot run into the payload.
 *
 * @internal
 */
export function jobMac(secret: Uint8Array): {
  head(text: string): MacHead
  tag(head: MacHead, text: string): string
} {
  const keyBlock = new Uint8Array(BLOCK)
  keyBlock.set(secret.length > BLOCK ? crypto.hash('blake2s256', secret, 'buffer') : secret)
  return {
    head(text) {
      const start = Buffer.from(text, 'utf8')
      const bytes = Buffer.alloc(BLOCK + Math.ceil(start.length / BLOCK) * BLOCK, 0x20)
      bytes.set(keyBlock)
      bytes.set(start, BLOCK)
      return { bytes, state: blake2sPrefix(bytes) }
    },
    tag(head, text) {
      return (
        blake2sTag(head.state, text) ??
        crypto
          .hash('blake2s256', Buffer.concat([head.bytes, Buffer.from(text, 'utf8')]), 'base64url')
          .slice(0, 22)
      )
    },
  }
}
