import { describe, expect, it } from 'vitest'
import { jsonLine, outputLines } from '../bench/layouts/features.js'
import { renderMarkdown, renderTable } from '../bench/layouts/report.js'
import type { BenchResults, LoadRun, SizeResult } from '../bench/layouts/results.js'
import { renderScalingSvg } from '../bench/layouts/scaling-chart.js'
import { median, percentile } from '../bench/layouts/stats.js'
import { readRatio, summarize } from '../bench/layouts/summary.js'

// Shape only: a fixed input, no database, no timing.

const run = (requests: number, p50: number, p99: number): LoadRun => ({
  requests,
  ms: 1000,
  p50,
  p99,
})
const memory = (contextsBytes: number) => ({
  contextsBytes,
  contextsBytesBefore: 1_000_000,
  rssAnonBytes: contextsBytes + 500_000,
  vmRssBytes: contextsBytes * 4,
})

function size(tenants: number, unionError?: string): SizeResult {
  return {
    tenants,
    rows: { users: tenants, accounts: tenants * 2, transactions: tenants * 80 },
    build: { generateMs: 1000, migrateMs: 2000, migratedRows: tenants * 84 },
    // medians: row 20, schema 20 * tenants; one outlier each side must not move them
    schemaChange: { row: [20, 900, 10], schema: [20 * tenants, 10 * tenants, 99 * tenants] },
    report: {
      row: [2, 2, 2],
      union: unionError ? [] : [8, 8, 8],
      ...(unionError ? { unionError } : {}),
      loop: [40, 40, 40],
    },
    requests: {
      row: [run(1000, 2, 9), run(1200, 2, 9), run(800, 2, 9)],
      rowPlain: [run(3000, 1, 5), run(3000, 1, 5), run(3000, 1, 5)],
      schema: [run(2000, 1, 6), run(2000, 1, 6), run(2000, 1, 6)],
    },
    footprint: {
      row: { classes: 31, bytes: 1_000_000 },
      schema: { classes: 19 * tenants, bytes: 300_000 * tenants },
    },
    memory: { row: memory(1_500_000), schema: memory(50_000 * tenants) },
  }
}

const results: BenchResults = {
  mode: 'quick',
  startedAt: '2026-11-27T09:00:00.000Z',
  finishedAt: '2026-11-27T09:01:00.000Z',
  machine: {
    cpus: 2,
    cpuModel: 'Test CPU',
    memoryBytes: 2 ** 33,
    platform: 'linux x64',
    node: 'v20',
  },
  postgres: { version: 'PostgreSQL 17.10 on x86_64', server: 'embedded' },
  settings: {
    scale: 0.05,
    seed: 1,
    repetitions: 3,
    pool: 10,
    concurrency: 20,
    requestMs: 1000,
    readShare: 0.8,
  },
  // out of order on purpose: the report sorts by tenant count
  sizes: [size(1000, 'out of shared memory'), size(100)],
  features: [
    {
      name: 'plugin',
      quick: true,
      ok: true,
      ms: 5000,
      lines: ['query  plugin / baseline', 'select  1.04'],
    },
    { name: 'rls', quick: true, ok: false, ms: 100, lines: [], error: 'exit code 1: boom' },
  ],
}

/** A small well-formedness check: balanced tags, quoted attributes, escaped text. */
function assertWellFormedXml(xml: string): void {
  const body = xml.replace(/^<\?xml[^?]*\?>\s*/, '')
  const stack: string[] = []
  const tag = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/g
  let last = 0
  for (let m = tag.exec(body); m !== null; m = tag.exec(body)) {
    const text = body.slice(last, m.index)
    expect(text, 'text between tags has no raw < and only escaped &').not.toMatch(
      /<|&(?!amp;|lt;|gt;|quot;|#\d+;)/,
    )
    last = tag.lastIndex
    const [, close, name, , selfClose] = m
    if (close) expect(stack.pop(), `closing </${name}>`).toBe(name)
    else if (!selfClose) stack.push(name!)
  }
  expect(body.slice(last).trim()).toBe('')
  expect(stack).toEqual([])
}

describe('bench report: ratios', () => {
  it('takes the median of the repetitions, not the mean (one slow outlier does not move it)', () => {
    expect(median([20, 900, 10])).toBe(20)
    expect(median([1, 2, 3, 4])).toBe(2.5)
    expect(percentile([5, 1, 4, 2, 3], 50)).toBe(3)
    expect(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 99)).toBe(10)
  })

  it('computes row / schema per measure and tenant count, tenant counts ascending', () => {
    const lines = summarize(results)
    const change = lines.filter((l) => l.measure.startsWith('schema change'))
    expect(change.map((l) => [l.tenants, l.row, l.schema, l.ratio])).toEqual([
      [100, 20, 2000, 0.01],
      [1000, 20, 20_000, 0.001],
    ])
    const rps = lines.find((l) => l.measure === 'requests: throughput (plugin + RLS)')!
    expect([rps.row, rps.schema, rps.ratio]).toEqual([1000, 2000, 0.5])
    const catalog = lines.find((l) => l.measure.startsWith('catalog') && l.tenants === 100)!
    expect(catalog.ratio).toBeCloseTo(31 / 1900)
  })

  it('reports a failed UNION ALL as n/a with its error, instead of a ratio against nothing', () => {
    const union = summarize(results).filter((l) => l.measure.includes('UNION ALL'))
    expect(union[0]!.ratio).toBe(0.25)
    expect(Number.isNaN(union[1]!.ratio)).toBe(true)
    expect(union[1]!.note).toContain('out of shared memory')
    const table = renderTable(summarize(results)).join('\n')
    expect(table).toMatch(/cross-tenant report vs UNION ALL\s+1,000\s+2\.00 ms\s+n\/a\s+n\/a/)
  })

  it('reads ratios from the row-level side, the direction depending on the unit', () => {
    expect(readRatio({ unit: 'ms', ratio: 0.01 })).toBe('row-level 100× faster')
    expect(readRatio({ unit: 'req/s', ratio: 0.5 })).toBe('row-level 2.0× slower')
    expect(readRatio({ unit: 'req/s', ratio: 1.5 })).toBe('row-level 1.5× faster')
    expect(readRatio({ unit: 'bytes', ratio: 0.25 })).toBe('row-level 4.0× less')
    expect(readRatio({ unit: 'ms', ratio: 1.01 })).toBe('about the same')
  })
})

describe('bench report: outputs', () => {
  it('renders the scaling chart as well-formed SVG with no NaN coordinates', () => {
    const svg = renderScalingSvg(results)
    expect(svg.startsWith('<?xml')).toBe(true)
    assertWellFormedXml(svg)
    expect(svg).not.toMatch(/NaN|Infinity|undefined/)
    expect(svg).toContain('row-level: once on the shared table')
    expect(svg).toContain('schema-per-tenant: loop with search_path')
    expect(svg).toContain('1,000 tenants: row-level 1,000× faster than per schema')
    // the UNION ALL failed at the largest size: the headline falls back to the loop
    expect(svg).toContain('1,000 tenants: row-level 20× faster than the search_path loop')
  })

  it('heads the report panel with the faster schema-per-tenant way, not always UNION ALL', () => {
    const one = size(100)
    expect(renderScalingSvg({ mode: 'quick', sizes: [one] })).toContain(
      '100 tenants: row-level 4.0× faster than UNION ALL',
    )
    const loopWins = { ...one, report: { ...one.report, loop: [5, 5, 5] } }
    expect(renderScalingSvg({ mode: 'quick', sizes: [loopWins] })).toContain(
      '100 tenants: row-level 2.5× faster than the search_path loop',
    )
  })

  it('writes latest.md with the machine, the sizes, the table, the chart and the feature output', () => {
    const md = renderMarkdown(results, '2026-11-27T0900Z-quick.json')
    expect(md).toContain('2 cores, Test CPU, 8.0 GiB memory')
    expect(md).toContain('| 100 | 100 | 200 | 8,000 |')
    expect(md).toContain('| measure | tenants | row-level | schema | row / schema | reading |')
    expect(md).toContain('| schema change: add column + index | 100 | 20.0 ms | 2.00 s | 0.0100 |')
    expect(md).toContain('![Cost vs tenant count, row-level vs schema-per-tenant](scaling.svg)')
    expect(md).toContain('select  1.04')
    expect(md).toContain('exit code 1: boom')
  })

  it("keeps a feature benchmark's whole output (not only its last table) and its JSON line", () => {
    const out =
      '\nstarting   \ncompile overhead 3 µs\n\n\n\nquery   plugin / baseline\nselect  1.04\n\n{"ratio":1.04}\n\n'
    expect(outputLines(out)).toEqual([
      'starting',
      'compile overhead 3 µs',
      '',
      'query   plugin / baseline',
      'select  1.04',
      '',
      '{"ratio":1.04}',
    ])
    expect(jsonLine(out)).toEqual({ ratio: 1.04 })
    expect(jsonLine('no json here {oops}')).toBeUndefined()
  })
})
