import { createHash, createHmac, type Hash, timingSafeEqual } from 'node:crypto'
import { once } from 'node:events'
import { open } from 'node:fs/promises'
import type { Readable, Writable } from 'node:stream'
import { InvalidInputError, LifecycleError } from '../errors/index.js'

/**
 * The archive layout, line-framed so a reader never holds more than one chunk:
 *
 * ```text
 * RTARCHIVE 1\n
 * M <bytes> <sha256>\n<manifest JSON>\n
 * T <table index>\n  then chunks  C <bytes>\n<COPY text bytes>  then  E <table index> <bytes> <sha256>\n
 * ...one T..E section per table, in the manifest's order...
 * S <bytes> <sha256>\n<summary JSON: per table, row count and checksum>\n
 * Z <sha256 of every byte before this line>\n
 * K hmac-sha256 <HMAC of "rowtenancy-archive/1\n" and that sha256, hex>\n   (only when signed with a key)
 * ```
 *
 * The counts and checksums come last so the export computes them on a second
 * connection, in the same snapshot, while the rows stream.
 *
 * @internal
 */
export const ARCHIVE_MAGIC = 'RTARCHIVE 1'

/** The longest header line a reader accepts (a manifest line is short; its JSON is a counted block). */
const MAX_LINE = 4096
/** The largest manifest and chunk a reader accepts. */
const MAX_BLOCK = 64 * 1024 * 1024

/** The archive's last line when it is signed. */
const SIGNATURE_LINE = /^K hmac-sha256 ([0-9a-f]{64})\n$/
const SIGNATURE_LINE_BYTES = 79

/** The shortest archive key accepted, in bytes. */
const MIN_KEY_BYTES = 16

/**
 * An archive key as bytes: a string (its UTF-8) or bytes, at least 16 of them.
 * Throws `InvalidInputError` for anything shorter or of another type.
 *
 * @internal
 */
export function archiveKeyBytes(key: string | Uint8Array): Uint8Array {
  const bytes = typeof key === 'string' ? Buffer.from(key, 'utf8') : key
  if (!(bytes instanceof Uint8Array) || bytes.length < MIN_KEY_BYTES) {
    throw new InvalidInputError(
      `The archive key must be at least ${MIN_KEY_BYTES} bytes (a string or a Uint8Array); ` +
        'use a random secret, e.g. `openssl rand -hex 32`.',
    )
  }
  return bytes
}

/**
 * Whether the archive file at `path` ends with a signature line (it is not
 * checked here: {@link ArchiveReader} with the key does that).
 *
 * @internal
 */
export async function archiveFileSigned(path: string): Promise<boolean> {
  const file = await open(path, 'r')
  try {
    const { size } = await file.stat()
    const length = Math.min(size, 128)
    const tail = Buffer.alloc(length)
    await file.read(tail, 0, length, size - length)
    return /\nK hmac-sha256 [0-9a-f]{64}\n$/.test(tail.toString('latin1'))
  } finally {
    await file.close()
  }
}

/** The archive's signature: HMAC-SHA256 of the format tag and the archive's sha256 (which covers every byte before it). */
function archiveSignature(key: Uint8Array, sha256: string): Buffer {
  return createHmac('sha256', key).update(`rowtenancy-archive/1\n${sha256}`).digest()
}

/**
 * Writes an archive to a stream, honouring back-pressure, and hashes as it goes.
 *
 * @internal
 */
export class ArchiveWriter {
  readonly #out: Writable
  readonly #all: Hash = createHash('sha256')
  #section: Hash | undefined
  #sectionBytes = 0
  bytes = 0

  readonly #key: Uint8Array | undefined

  /** With `key`, the archive ends with its HMAC signature (a `K` line after `Z`). */
  constructor(out: Writable, key?: Uint8Array) {
    this.#out = out
    this.#key = key
  }

  async #write(buf: Buffer): Promise<void> {
    this.#all.update(buf)
    this.bytes += buf.length
    if (!this.#out.write(buf)) await once(this.#out, 'drain')
  }

  async start(manifestJson: string): Promise<void> {
    await this.#write(Buffer.from(`${ARCHIVE_MAGIC}\n`))
    await this.#block('M', manifestJson)
  }

  async #block(tag: string, json: string): Promise<void> {
    const body = Buffer.from(json, 'utf8')
    const sha = createHash('sha256').update(body).digest('hex')
    await this.#write(Buffer.from(`${tag} ${body.length} ${sha}\n`))
    await this.#write(body)
    await this.#write(Buffer.from('\n'))
  }

  async summary(json: string): Promise<void> {
    await this.#block('S', json)
  }

  async beginTable(index: number): Promise<void> {
    this.#section = createHash('sha256')
    this.#sectionBytes = 0
    await this.#write(Buffer.from(`T ${index}\n`))
  }

  async chunk(data: Buffer): Promise<void> {
    if (data.length === 0) return
    this.#section!.update(data)
    this.#sectionBytes += data.length
    await this.#write(Buffer.from(`C ${data.length}\n`))
    await this.#write(data)
  }

  async endTable(index: number): Promise<{ bytes: number; sha256: string }> {
    const sha256 = this.#section!.digest('hex')
    const bytes = this.#sectionBytes
    await this.#write(Buffer.from(`E ${index} ${bytes} ${sha256}\n`))
    this.#section = undefined
    return { bytes, sha256 }
  }

  async finish(): Promise<string> {
    const sha = this.#all.digest('hex')
    let text = `Z ${sha}\n`
    if (this.#key) text += `K hmac-sha256 ${archiveSignature(this.#key, sha).toString('hex')}\n`
    const line = Buffer.from(text)
    this.bytes += line.length
    if (!this.#out.write(line)) await once(this.#out, 'drain')
    return sha
  }
}

/**
 * What an import knows of an archive's signature: `verified` (checked with the
 * key), `not-checked` (signed, but no key was given), `unsigned` (no signature,
 * no key).
 */
export type ArchiveSignatureState = 'verified' | 'not-checked' | 'unsigned'

function damaged(what: string): LifecycleError {
  return new LifecycleError(
    `The archive is damaged or not a rowtenancy archive: ${what}. Nothing was imported; ` +
      'export the tenant again (rowtenancy tenants export) and import the new file.',
  )
}

/**
 * Reads an archive written by {@link ArchiveWriter} from a stream: the manifest
 * first, then each table's data as an async iterator of chunks; every hash is
 * checked as the bytes pass, a truncated or edited archive throws.
 *
 * @internal
 */
export class ArchiveReader {
  readonly #it: AsyncIterator<Buffer>
  readonly #all: Hash = createHash('sha256')
  #buf: Buffer = Buffer.alloc(0)
  #eof = false

  readonly #key: Uint8Array | undefined

  /** With `key`, {@link finish} requires the archive's signature and checks it. */
  constructor(input: Readable, key?: Uint8Array) {
    this.#it = input[Symbol.asyncIterator]() as AsyncIterator<Buffer>
    this.#key = key
  }

  async #fill(): Promise<boolean> {
    if (this.#eof) return false
    const next = await this.#it.next()
    if (next.done) {
      this.#eof = true
      return false
    }
    const chunk = Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value)
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk])
    return true
  }

  async #line(hash = true): Promise<string> {
    for (;;) {
      const nl = this.#buf.indexOf(10)
      if (nl >= 0) {
        const line = this.#buf.subarray(0, nl)
        if (hash) this.#all.update(this.#buf.subarray(0, nl + 1))
        this.#buf = this.#buf.subarray(nl + 1)
        return line.toString('utf8')
      }
      if (this.#buf.length > MAX_LINE) throw damaged('a header line is too long')
      if (!(await this.#fill())) throw damaged('it ends early (truncated)')
    }
  }

  async *#bytes(n: number): AsyncGenerator<Buffer> {
    let left = n
    while (left > 0) {
      if (this.#buf.length === 0 && !(await this.#fill())) {
        throw damaged('it ends early (truncated)')
      }
      const take = this.#buf.subarray(0, Math.min(left, this.#buf.length))
      this.#buf = this.#buf.subarray(take.length)
      this.#all.update(take)
      left -= take.length
      yield take
    }
  }

  /** Reads the magic line and the manifest; returns the manifest JSON text. */
  async manifest(): Promise<string> {
    const magic = await this.#line()
    if (magic !== ARCHIVE_MAGIC) throw damaged(`the first line is not ${ARCHIVE_MAGIC}`)
    return this.#block('M', 'manifest')
  }

  /** Reads the summary (counts and checksums) after the last table; returns its JSON text. */
  async summary(): Promise<string> {
    return this.#block('S', 'summary')
  }

  async #block(tag: string, what: string): Promise<string> {
    const m = new RegExp(`^${tag} (\\d+) ([0-9a-f]{64})$`).exec(await this.#line())
    if (!m) throw damaged(`no ${what} where it belongs (truncated?)`)
    const size = Number(m[1])
    if (size > MAX_BLOCK) throw damaged(`the ${what} is too large`)
    const parts: Buffer[] = []
    for await (const b of this.#bytes(size)) parts.push(b)
    const body = Buffer.concat(parts)
    if (createHash('sha256').update(body).digest('hex') !== m[2]) {
      throw damaged(`the ${what} does not match its checksum (edited)`)
    }
    if ((await this.#line()) !== '') throw damaged(`no line break after the ${what}`)
    return body.toString('utf8')
  }

  /**
   * The data of table `index`: yields its COPY text chunks and checks the
   * section's length and sha256 when it ends (throwing before the caller commits).
   */
  async *table(index: number): AsyncGenerator<Buffer> {
    if ((await this.#line()) !== `T ${index}`) throw damaged(`table section ${index} is missing`)
    const section = createHash('sha256')
    let total = 0
    for (;;) {
      const line = await this.#line()
      const c = /^C (\d+)$/.exec(line)
      if (c) {
        const size = Number(c[1])
        if (size === 0 || size > MAX_BLOCK) throw damaged('a data chunk has an invalid length')
        for await (const b of this.#bytes(size)) {
          section.update(b)
          total += b.length
          yield b
        }
        continue
      }
      const e = /^E (\d+) (\d+) ([0-9a-f]{64})$/.exec(line)
      if (!e || Number(e[1]) !== index) throw damaged(`table section ${index} is not closed`)
      if (Number(e[2]) !== total || section.digest('hex') !== e[3]) {
        throw damaged(`the data of table section ${index} does not match its checksum (edited)`)
      }
      return
    }
  }

  /**
   * Reads the closing line and checks the whole archive's sha256, then its
   * signature line if any; nothing may follow. With a key, an archive without a
   * signature, or with one made with another key, throws.
   */
  async finish(): Promise<{ sha256: string; signature: ArchiveSignatureState }> {
    const expected = this.#all.digest('hex')
    const z = /^Z ([0-9a-f]{64})$/.exec(await this.#line(false))
    if (!z) throw damaged('the closing line is missing (truncated)')
    if (z[1] !== expected) throw damaged('the archive does not match its checksum (edited)')
    // what follows the closing line: nothing, or one signature line
    while (this.#buf.length <= SIGNATURE_LINE_BYTES && (await this.#fill())) {}
    const rest = this.#buf.toString('latin1')
    let sig: Buffer | undefined
    if (rest !== '') {
      const k = SIGNATURE_LINE.exec(rest)
      if (!k) {
        throw damaged(
          rest.startsWith('K ')
            ? 'its signature line is malformed'
            : 'bytes follow the closing line',
        )
      }
      sig = Buffer.from(k[1]!, 'hex')
    }
    if (!this.#key) return { sha256: expected, signature: sig ? 'not-checked' : 'unsigned' }
    if (!sig) {
      throw new LifecycleError(
        'The archive is not signed, and an archive key is set: an archive exported without the key ' +
          '(or with its signature line cut off) is not trusted. Nothing was imported; export the tenant ' +
          'again with the same key (the archiveKey option; ROWTENANCY_ARCHIVE_KEY for the CLI), or import without a ' +
          'key if you trust the file.',
      )
    }
    if (!timingSafeEqual(sig, archiveSignature(this.#key, expected))) {
      throw new LifecycleError(
        "The archive's signature does not match: it was edited after the export, or signed with another " +
          'key. Nothing was imported; export the tenant again with this key (the ' +
          'archiveKey option; ROWTENANCY_ARCHIVE_KEY for the CLI).',
      )
    }
    return { sha256: expected, signature: 'verified' }
  }
}
