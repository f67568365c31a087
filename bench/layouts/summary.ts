import type { BenchResults, LoadRun, SizeResult } from './results.js'
import { median, ratio } from './stats.js'

/**
 * The unit of a summary line; `ms`, `bytes` and `count` are costs (lower is
 * better), `req/s` is a throughput (higher is better).
 *
 * @example
 * ```ts
 * const unit: Unit = 'ms'
 * ```
 */
export type Unit = 'ms' | 'req/s' | 'bytes' | 'count'

/**
 * One line of the ratio table: a measure at one tenant count, the median of
 * each layout, and `row / schema`.
 *
 * @example
 * ```ts
 * const line: SummaryLine = { measure: 'schema change', tenants: 100, unit: 'ms', row: 12, schema: 350, ratio: 12 / 350 }
 * ```
 */
export interface SummaryLine {
  readonly measure: string
  readonly tenants: number
  readonly unit: Unit
  readonly row: number
  readonly schema: number
  /** `row / schema` (NaN when a side is missing). */
  readonly ratio: number
  readonly note?: string
}

/** Requests per second of one load run. @internal */
function throughput(run: LoadRun): number {
  return (run.requests / run.ms) * 1000
}

/** The measures of one tenant count, in table order. @internal */
function sizeLines(size: SizeResult): SummaryLine[] {
  const n = size.tenants
  const line = (
    measure: string,
    unit: Unit,
    row: number,
    schema: number,
    note?: string,
  ): SummaryLine => ({
    measure,
    tenants: n,
    unit,
    row,
    schema,
    ratio: ratio(row, schema),
    ...(note === undefined ? {} : { note }),
  })
  const req = size.requests
  const rps = (runs: LoadRun[]) => median(runs.map(throughput))
  const lat = (runs: LoadRun[], k: 'p50' | 'p99') => median(runs.map((r) => r[k]))
  const lines = [
    line(
      'schema change: add column + index',
      'ms',
      median(size.schemaChange.row),
      median(size.schemaChange.schema),
    ),
    line(
      'cross-tenant report vs UNION ALL',
      'ms',
      median(size.report.row),
      median(size.report.union),
      size.report.unionError === undefined
        ? undefined
        : `UNION ALL failed: ${size.report.unionError}`,
    ),
    line(
      'cross-tenant report vs search_path loop',
      'ms',
      median(size.report.row),
      median(size.report.loop),
    ),
    line('requests: throughput (plugin + RLS)', 'req/s', rps(req.row), rps(req.schema)),
    line('requests: p50 latency (plugin + RLS)', 'ms', lat(req.row, 'p50'), lat(req.schema, 'p50')),
    line('requests: p99 latency (plugin + RLS)', 'ms', lat(req.row, 'p99'), lat(req.schema, 'p99')),
    line('requests: throughput (plain pg + RLS)', 'req/s', rps(req.rowPlain), rps(req.schema)),
    line(
      'catalog: pg_class entries',
      'count',
      size.footprint.row.classes,
      size.footprint.schema.classes,
    ),
    line('size on disk', 'bytes', size.footprint.row.bytes, size.footprint.schema.bytes),
    line(
      'backend memory (memory contexts)',
      'bytes',
      size.memory.row.contextsBytes,
      size.memory.schema.contextsBytes,
    ),
  ]
  const anonRow = size.memory.row.rssAnonBytes
  const anonSchema = size.memory.schema.rssAnonBytes
  if (anonRow !== null && anonSchema !== null) {
    lines.push(line('backend memory (RssAnon)', 'bytes', anonRow, anonSchema))
  }
  return lines
}

/**
 * The ratio table of a run: every measure at every tenant count, grouped by
 * measure (tenant counts ascending), each side the median over its repetitions.
 *
 * @example
 * ```ts
 * for (const l of summarize(results)) console.log(l.measure, l.tenants, l.ratio.toFixed(3))
 * ```
 */
export function summarize(results: Pick<BenchResults, 'sizes'>): SummaryLine[] {
  const sizes = [...results.sizes].sort((a, b) => a.tenants - b.tenants)
  const all = sizes.flatMap(sizeLines)
  const order = [...new Set(all.map((l) => l.measure))]
  return order.flatMap((m) => all.filter((l) => l.measure === m))
}

/**
 * A quantity in its unit, short: `0.42 ms`, `12.3 s`, `1,234 req/s`, `45.6 MB`.
 *
 * @example
 * ```ts
 * formatValue(1234.5, 'ms') // '1.23 s'
 * formatValue(3_500_000, 'bytes') // '3.5 MB'
 * ```
 */
export function formatValue(value: number, unit: Unit): string {
  if (!Number.isFinite(value)) return 'n/a'
  switch (unit) {
    case 'ms':
      if (value >= 1000) return `${(value / 1000).toPrecision(3)} s`
      return `${value.toPrecision(value >= 1 ? 3 : 2)} ms`
    case 'req/s':
      return `${Math.round(value).toLocaleString('en-US')} req/s`
    case 'bytes':
      if (value >= 1e9) return `${(value / 1e9).toPrecision(3)} GB`
      if (value >= 1e6) return `${(value / 1e6).toPrecision(3)} MB`
      if (value >= 1e3) return `${(value / 1e3).toPrecision(3)} kB`
      return `${value} B`
    case 'count':
      return Math.round(value).toLocaleString('en-US')
  }
}

/**
 * What a ratio means in words, from the row-level side: `12.5× faster`,
 * `2.1× slower`, `40× less`, `0.95× the throughput`.
 *
 * @example
 * ```ts
 * readRatio({ unit: 'ms', ratio: 0.04 } as SummaryLine) // 'row-level 25× faster'
 * readRatio({ unit: 'req/s', ratio: 0.5 } as SummaryLine) // 'row-level 2.0× slower'
 * ```
 */
export function readRatio(line: Pick<SummaryLine, 'unit' | 'ratio'>): string {
  const r = line.ratio
  if (!Number.isFinite(r) || r <= 0) return ''
  const times = (x: number) => `${x >= 10 ? Math.round(x).toLocaleString('en-US') : x.toFixed(1)}×`
  const cost = line.unit !== 'req/s'
  const better = cost ? r < 1 : r > 1
  const factor = r < 1 ? 1 / r : r
  if (factor < 1.05) return 'about the same'
  if (line.unit === 'ms' || line.unit === 'req/s') {
    return `row-level ${times(factor)} ${better ? 'faster' : 'slower'}`
  }
  return `row-level ${times(factor)} ${better ? 'less' : 'more'}`
}

/**
 * A ratio with three significant digits (`0.0042`, `1.02`, `311`).
 *
 * @example
 * ```ts
 * formatRatio(0.004213) // '0.00421'
 * ```
 */
export function formatRatio(r: number): string {
  if (!Number.isFinite(r)) return 'n/a'
  return r >= 100 ? Math.round(r).toString() : r.toPrecision(3)
}
