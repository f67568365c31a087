import type { BenchResults } from './results.js'
import { median } from './stats.js'
import { formatValue, readRatio } from './summary.js'

/**
 * One line of a chart panel: a name, a colour, and (tenants, ms) points.
 *
 * @example
 * ```ts
 * const s: Series = { name: 'row-level', color: '#1f6fd1', dashed: false, points: [[100, 12], [1000, 40]] }
 * ```
 */
export interface Series {
  readonly name: string
  readonly color: string
  readonly dashed: boolean
  readonly points: ReadonlyArray<readonly [number, number]>
}

const ROW = '#1f6fd1'
const SCHEMA = '#e0701b'
const LOOP = '#b0221b'
const W = 1000
const H = 510
const PANEL_W = 410
const PANEL_H = 270
const TOP = 122

/** Escapes text for SVG. @internal */
function esc(text: string): string {
  return text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;')
}

/** A decade tick in ms as a short label: `0.1 ms`, `10 ms`, `1 s`, `100 s`. @internal */
function tickLabel(ms: number): string {
  if (ms >= 1000) return `${Number((ms / 1000).toPrecision(1))} s`
  return `${Number(ms.toPrecision(1))} ms`
}

/** Rounds to 0.1 px for a compact file. @internal */
function px(n: number): string {
  return (Math.round(n * 10) / 10).toString()
}

/** Decade ticks covering `[lo, hi]` (both > 0). @internal */
function decades(lo: number, hi: number): number[] {
  const out: number[] = []
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) out.push(10 ** e)
  return out
}

/** One panel: log-log axes, tick labels, lines with labelled points, a legend and the headline. @internal */
function panel(x0: number, title: string, series: readonly Series[], headline: string): string {
  const pts = series.flatMap((s) => s.points).filter(([, v]) => Number.isFinite(v) && v > 0)
  if (pts.length === 0) return ''
  const ns = [...new Set(pts.map(([n]) => n))].sort((a, b) => a - b)
  const yTicks = decades(Math.min(...pts.map(([, v]) => v)), Math.max(...pts.map(([, v]) => v)))
  const yLo = Math.log10(yTicks[0]!)
  const yHi = Math.max(yLo + 1, Math.log10(yTicks[yTicks.length - 1]!))
  const xLo = Math.log10(ns[0]!)
  const xHi = Math.log10(ns[ns.length - 1]!)
  const left = 28
  const right = 70 // room for the value labels right of the last points
  const x = (n: number) =>
    xHi === xLo
      ? x0 + PANEL_W / 2
      : x0 + left + ((Math.log10(n) - xLo) / (xHi - xLo)) * (PANEL_W - left - right)
  const y = (v: number) => TOP + PANEL_H - ((Math.log10(v) - yLo) / (yHi - yLo)) * PANEL_H
  const out: string[] = []
  out.push(`<text x="${px(x0)}" y="${TOP - 32}" class="panel">${esc(title)}</text>`)
  out.push(`<text x="${px(x0)}" y="${TOP - 12}" class="headline">${esc(headline)}</text>`)
  out.push(`<rect x="${px(x0)}" y="${TOP}" width="${PANEL_W}" height="${PANEL_H}" class="frame"/>`)
  for (const t of yTicks) {
    const ty = y(t)
    out.push(
      `<line x1="${px(x0)}" y1="${px(ty)}" x2="${px(x0 + PANEL_W)}" y2="${px(ty)}" class="grid"/>`,
    )
    out.push(
      `<text x="${px(x0 - 6)}" y="${px(ty + 4)}" class="tick" text-anchor="end">${esc(tickLabel(t))}</text>`,
    )
  }
  for (const n of ns) {
    const tx = x(n)
    out.push(`<line x1="${px(tx)}" y1="${TOP}" x2="${px(tx)}" y2="${TOP + PANEL_H}" class="grid"/>`)
    out.push(
      `<text x="${px(tx)}" y="${TOP + PANEL_H + 18}" class="tick" text-anchor="middle">${n.toLocaleString('en-US')}</text>`,
    )
  }
  out.push(
    `<text x="${px(x0 + PANEL_W / 2)}" y="${TOP + PANEL_H + 38}" class="axis" text-anchor="middle">tenants</text>`,
  )
  const labels: { x: number; y: number; color: string; text: string }[] = []
  for (const s of series) {
    const good = s.points.filter(([, v]) => Number.isFinite(v) && v > 0)
    if (good.length === 0) continue
    const d = good.map(([n, v], i) => `${i === 0 ? 'M' : 'L'}${px(x(n))} ${px(y(v))}`).join(' ')
    const dash = s.dashed ? ' stroke-dasharray="7 5"' : ''
    out.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="3"${dash}/>`)
    for (const [n, v] of good) {
      out.push(`<circle cx="${px(x(n))}" cy="${px(y(v))}" r="4.5" fill="${s.color}"/>`)
    }
    const [ln, lv] = good[good.length - 1]!
    labels.push({ x: x(ln) + 9, y: y(lv) + 4, color: s.color, text: formatValue(lv, 'ms') })
  }
  // End-point labels never overlap: push each one at least 15 px below the one above.
  labels.sort((a, b) => a.y - b.y)
  labels.forEach((l, i) => {
    const above = labels[i - 1]
    const ly = above && l.y - above.y < 15 ? above.y + 15 : l.y
    labels[i] = { ...l, y: ly }
    out.push(
      `<text x="${px(l.x)}" y="${px(ly)}" class="value" fill="${l.color}">${esc(l.text)}</text>`,
    )
  })
  series.forEach((s, i) => {
    const ly = TOP + PANEL_H + 60 + i * 20
    const dash = s.dashed ? ' stroke-dasharray="7 5"' : ''
    out.push(
      `<line x1="${px(x0)}" y1="${ly - 4}" x2="${px(x0 + 30)}" y2="${ly - 4}" stroke="${s.color}" stroke-width="3"${dash}/>`,
    )
    out.push(`<text x="${px(x0 + 38)}" y="${ly}" class="legend">${esc(s.name)}</text>`)
  })
  return out.join('\n')
}

/** The headline of a panel: the ratio at the largest tenant count. @internal */
function headline(row: Series, other: Series): string {
  const last = row.points[row.points.length - 1]
  const match = last && other.points.find(([n]) => n === last[0])
  if (!last || !match) return ''
  const text = readRatio({ unit: 'ms', ratio: last[1] / match[1] })
  return text ? `${last[0].toLocaleString('en-US')} tenants: ${text} than ${other.name}` : ''
}

/**
 * The scaling chart of a run as a standalone SVG (no scripts, no external
 * fonts): cost against tenant count on log-log axes, both layouts, one panel
 * for the schema change and one for the cross-tenant report (row-level vs
 * UNION ALL vs the `search_path` loop), each point the median of its
 * repetitions, with the ratio at the largest tenant count as the panel's headline
 * (for the report, against the faster of the two schema-per-tenant ways).
 *
 * @example
 * ```ts
 * writeFileSync('bench/results/scaling.svg', renderScalingSvg(results))
 * ```
 */
export function renderScalingSvg(results: Pick<BenchResults, 'sizes' | 'mode'>): string {
  const sizes = [...results.sizes].sort((a, b) => a.tenants - b.tenants)
  const pts = (f: (s: (typeof sizes)[number]) => number[]) =>
    sizes.map((s) => [s.tenants, median(f(s))] as const)
  const changeRow: Series = {
    name: 'row-level: once on the shared table',
    color: ROW,
    dashed: false,
    points: pts((s) => s.schemaChange.row),
  }
  const changeSchema: Series = {
    name: 'schema-per-tenant: once per schema',
    color: SCHEMA,
    dashed: false,
    points: pts((s) => s.schemaChange.schema),
  }
  const reportRow: Series = {
    name: 'row-level: one GROUP BY',
    color: ROW,
    dashed: false,
    points: pts((s) => s.report.row),
  }
  const reportUnion: Series = {
    name: 'schema-per-tenant: UNION ALL of every schema',
    color: SCHEMA,
    dashed: false,
    points: pts((s) => s.report.union),
  }
  const reportLoop: Series = {
    name: 'schema-per-tenant: loop with search_path',
    color: LOOP,
    dashed: true,
    points: pts((s) => s.report.loop),
  }
  const unionShort = { ...reportUnion, name: 'UNION ALL' }
  const loopShort = { ...reportLoop, name: 'the search_path loop' }
  // Against the faster schema-per-tenant way at the largest count (a failed UNION ALL is NaN).
  const lastOf = (s: Series) => s.points[s.points.length - 1]?.[1] ?? Number.NaN
  const reportHeadline = headline(
    reportRow,
    lastOf(reportUnion) <= lastOf(reportLoop) || !Number.isFinite(lastOf(reportLoop))
      ? unionShort
      : loopShort,
  )
  const body = [
    panel(
      70,
      'Schema change: add a column + an index',
      [changeRow, changeSchema],
      headline(changeRow, { ...changeSchema, name: 'per schema' }),
    ),
    panel(
      560,
      'Cross-tenant report: balance per tenant',
      [reportRow, reportUnion, reportLoop],
      reportHeadline,
    ),
  ].join('\n')
  return `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif">
<style>
.title { font-size: 20px; font-weight: bold; fill: #111; }
.sub { font-size: 13px; fill: #555; }
.panel { font-size: 16px; font-weight: bold; fill: #111; }
.headline { font-size: 13px; fill: #1f6fd1; font-weight: bold; }
.frame { fill: #fff; stroke: #999; }
.grid { stroke: #e3e3e3; }
.tick { font-size: 12px; fill: #444; }
.axis { font-size: 12px; fill: #444; }
.value { font-size: 12px; font-weight: bold; }
.legend { font-size: 13px; fill: #222; }
</style>
<rect width="${W}" height="${H}" fill="#fafafa"/>
<text x="20" y="32" class="title">Row-level vs schema-per-tenant: cost as tenants grow (lower is better)</text>
<text x="20" y="54" class="sub">Median wall time per operation, log-log axes, same data in both layouts, same run (${results.mode} mode).</text>
${body}
</svg>
`
}
