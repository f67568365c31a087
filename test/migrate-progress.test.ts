import { PassThrough } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { bar, createProgress, duration } from '../src/cli/progress.js'
import type { MigrationEvent } from '../src/entries/migrate.js'

function capture() {
  const stream = new PassThrough()
  let text = ''
  stream.on('data', (c) => (text += c))
  return { stream, text: () => text }
}

const events: MigrationEvent[] = [
  { type: 'plan', tenants: 2, toCopy: 2, rows: 300, dryRun: false },
  { type: 'tenant-start', tenantId: '1', schema: 'acme', rows: 100, tables: 2 },
  { type: 'table-copied', tenantId: '1', table: 'author', rows: 40 },
  { type: 'table-copied', tenantId: '1', table: 'book', rows: 60 },
  { type: 'tenant-done', tenantId: '1', rows: 100, ms: 12 },
  { type: 'tenant-start', tenantId: '2', schema: 'globex', rows: 200, tables: 2 },
  { type: 'tenant-failed', tenantId: '2', error: 'boom' },
  { type: 'sequences', adjusted: 3 },
  { type: 'finished', ok: false, ms: 40 },
]

describe('progress rendering', () => {
  it('plain mode (not a TTY): one line per tenant event, no escape codes', () => {
    let t = 0
    const out = capture()
    const p = createProgress({ mode: 'plain', stream: out.stream, now: () => (t += 100) })
    for (const e of events) p.onEvent(e)
    p.finish()
    const text = out.text()
    expect(text).not.toContain('\x1b[')
    expect(text).toMatch(/tenant 1 \("acme"\): started, 2 tables, ~100 rows/)
    expect(text).toMatch(
      /tenant 1: done, 100 rows in 12 ms; 1\/2 tenants .* 100 rows, \d+ rows\/s, ETA/,
    )
    expect(text).toMatch(/tenant 2: FAILED: boom/)
  })

  it('tty mode: a bar per running tenant and an overall bar, redrawn in place with ANSI escapes', () => {
    let t = 0
    const out = capture()
    const p = createProgress({ mode: 'tty', stream: out.stream, now: () => (t += 1000) })
    for (const e of events.slice(0, 3)) p.onEvent(e)
    const text = out.text()
    expect(text).toContain('\x1b[2K')
    expect(text).toMatch(/1 "acme".*█+░+ 1\/2 tables, 40 rows/)
    expect(text).toMatch(/0\/2 tenants .* 40 rows, \d+ rows\/s, ETA \d+s/)
    expect(text).toMatch(/\x1b\[2A/) // moved up over the previous frame
  })

  it('json mode: one JSON event per line', () => {
    const lines: string[] = []
    const p = createProgress({
      mode: 'json',
      stream: new PassThrough(),
      writeJson: (l) => lines.push(l),
    })
    for (const e of events) p.onEvent(e)
    expect(lines.map((l) => JSON.parse(l).type)).toEqual(events.map((e) => e.type))
  })

  it('bars and durations stay in range', () => {
    expect(bar(2, 4)).toBe('████')
    expect(bar(Number.NaN, 4)).toBe('░░░░')
    expect(duration(3725)).toBe('1h02m')
    expect(duration(65)).toBe('1m05s')
    expect(duration(Number.NaN)).toBe('--')
  })
})
