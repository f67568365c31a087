import { createReadStream, createWriteStream } from 'node:fs'
import { Readable } from 'node:stream'
import { finished, pipeline } from 'node:stream/promises'
import type pg from 'pg'
import { from } from 'pg-copy-streams'
import { ArchiveReader, ArchiveWriter } from '../src/lifecycle/archive-format.js'

export interface RawArchive {
  manifest: any
  data: Buffer[]
  summary: any
}

export async function readRaw(path: string): Promise<RawArchive> {
  const input = createReadStream(path)
  const r = new ArchiveReader(input)
  const manifest = JSON.parse(await r.manifest())
  const data: Buffer[] = []
  for (let i = 0; i < manifest.tables.length; i++) {
    const parts: Buffer[] = []
    for await (const c of r.table(i)) parts.push(c)
    data.push(Buffer.concat(parts))
  }
  const summary = JSON.parse(await r.summary())
  await r.finish()
  input.destroy()
  return { manifest, data, summary }
}

/** Writes a well-formed archive (every hash recomputed: they are forgeable), signed when `key` is given. */
export async function writeRaw(path: string, a: RawArchive, key?: Uint8Array): Promise<void> {
  const out = createWriteStream(path)
  const w = new ArchiveWriter(out, key)
  await w.start(JSON.stringify(a.manifest))
  for (let i = 0; i < a.data.length; i++) {
    await w.beginTable(i)
    if (a.data[i]!.length > 0) await w.chunk(a.data[i]!)
    await w.endTable(i)
  }
  await w.summary(JSON.stringify(a.summary))
  await w.finish()
  out.end()
  await finished(out)
}

/** Maps every COPY line's fields. */
export function mapLines(buf: Buffer, f: (fields: string[]) => string[]): Buffer {
  const text = buf.toString('utf8')
  if (text === '') return buf
  const lines = text.split('\n')
  lines.pop()
  return Buffer.from(lines.map((l) => f(l.split('\t')).join('\t')).join('\n') + '\n')
}

export async function copyFrom(c: pg.PoolClient, sql: string, data: Buffer): Promise<void> {
  await pipeline(Readable.from([data]), c.query(from(sql)))
}
