import type { MigrationEvent } from '../migrate/events.js'

/**
 * A progress renderer for migration events.
 *
 * @example
 * ```ts
 * const progress = createProgress({ mode: 'plain', stream: process.stderr })
 * await migrate({ db: pool, all: true, onEvent: progress.onEvent })
 * progress.finish()
 * ```
 */
export interface Progress {
  readonly onEvent: (event: MigrationEvent) => void
  /** Draws the final state and stops redrawing. */
  finish(): void
}

/**
 * How progress is shown: `tty` (a bar per running tenant and an overall bar with
 * rows/s and ETA, redrawn in place with ANSI escapes), `plain` (one line per
 * tenant event, for logs and pipes), `json` (one JSON object per line), `none`.
 */
export type ProgressMode = 'tty' | 'plain' | 'json' | 'none'

interface Running {
  readonly id: string
  readonly schema: string
  readonly rows: number
  readonly tables: number
  copied: number
  tablesDone: number
}

/** @internal a bar of `width` cells for a fraction in [0, 1] */
export function bar(fraction: number, width: number): string {
  const f = Math.max(0, Math.min(1, Number.isFinite(fraction) ? fraction : 0))
  const full = Math.round(f * width)
  return `${'█'.repeat(full)}${'░'.repeat(width - full)}`
}

/** @internal seconds as `1h02m`, `3m04s`, `12s` */
export function duration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--'
  const s = Math.round(seconds)
  if (s >= 3600)
    return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`
  if (s >= 60) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`
  return `${s}s`
}

/** The counters a renderer keeps across events. */
interface Totals {
  /** Estimated rows to copy. */
  total: number
  tenants: number
  finished: number
  copied: number
  start: number
}

/** Applies an event to the counters and the running tenants. */
function track(e: MigrationEvent, totals: Totals, running: Map<string, Running>, now: number) {
  switch (e.type) {
    case 'plan':
      totals.total = e.rows
      totals.tenants = e.toCopy
      totals.start = now
      break
    case 'tenant-start':
      running.set(e.tenantId, {
        id: e.tenantId,
        schema: e.schema,
        rows: e.rows,
        tables: e.tables,
        copied: 0,
        tablesDone: 0,
      })
      break
    case 'table-copied': {
      const r = running.get(e.tenantId)
      if (r) {
        r.copied += e.rows
        r.tablesDone += 1
      }
      totals.copied += e.rows
      break
    }
    case 'tenant-done':
    case 'tenant-skipped':
      running.delete(e.tenantId)
      totals.finished += 1
      break
    case 'tenant-failed': {
      const r = running.get(e.tenantId)
      if (r) totals.copied -= r.copied
      running.delete(e.tenantId)
      totals.finished += 1
      break
    }
    default:
      break
  }
}

/** The overall line: tenants, a bar, rows, rows/s and ETA. */
function overallLine(t: Totals, now: number): string {
  const r = t.copied / Math.max(0.001, (now - t.start) / 1000)
  const eta = r > 0 ? Math.max(0, t.total - t.copied) / r : Number.NaN
  const fraction =
    t.finished >= t.tenants && t.tenants > 0 ? 1 : t.total > 0 ? t.copied / t.total : 0
  return `${t.finished}/${t.tenants} tenants ${bar(fraction, 24)} ${t.copied} rows, ${Math.round(r)} rows/s, ETA ${duration(eta)}`
}

/** One running tenant's line of the tty frame. */
function runningLine(r: Running): string {
  const label = `${r.id} ${JSON.stringify(r.schema)}`.slice(0, 28).padEnd(28)
  // Row estimates come from catalog statistics; a tenant whose tables are all copied is full.
  const frac =
    r.tablesDone >= r.tables
      ? 1
      : r.rows > 0
        ? r.copied / r.rows
        : r.tablesDone / Math.max(1, r.tables)
  return `  ${label} ${bar(frac, 20)} ${r.tablesDone}/${r.tables} tables, ${r.copied} rows`
}

/** The ANSI text that redraws `lines` over a previous frame of `drawn` lines. */
function frameText(lines: readonly string[], drawn: number): string {
  let text = drawn > 0 ? `\x1b[${drawn}A` : ''
  for (const line of lines) text += `\x1b[2K${line}\n`
  // Clear lines left over from a taller previous frame.
  for (let i = lines.length; i < drawn; i++) text += '\x1b[2K\n'
  if (drawn > lines.length) text += `\x1b[${drawn - lines.length}A`
  return text
}

/** The `plain` mode line of an event (after it is tracked), if it has one. */
function plainLine(e: MigrationEvent, overall: () => string): string | undefined {
  switch (e.type) {
    case 'plan':
      return `${e.dryRun ? 'dry run: ' : ''}${e.tenants} tenants, ${e.toCopy} to migrate, ~${e.rows} rows`
    case 'tenant-start':
      return `tenant ${e.tenantId} (${JSON.stringify(e.schema)}): started, ${e.tables} tables, ~${e.rows} rows`
    case 'tenant-done':
      return `tenant ${e.tenantId}: done, ${e.rows} rows in ${e.ms} ms; ${overall()}`
    case 'tenant-skipped':
      return `tenant ${e.tenantId}: skipped (${e.reason})`
    case 'tenant-failed':
      return `tenant ${e.tenantId}: FAILED: ${e.error}`
    case 'indexes-deferred':
      return `indexes: ${e.indexes.length} dropped from the empty shared tables, built again after the copy`
    case 'indexes-built':
      return `indexes: ${e.indexes.length} built`
    case 'sequences':
      return `sequences: ${e.adjusted} moved above the copied ids`
    default:
      return undefined
  }
}

/**
 * Creates a progress renderer. Writes to `stream` (stderr in the CLI, so stdout
 * keeps the report); `json` mode writes event lines with `writeJson`.
 */
export function createProgress(options: {
  mode: ProgressMode
  stream: NodeJS.WritableStream
  writeJson?: (line: string) => void
  now?: () => number
}): Progress {
  const { mode, stream } = options
  const now = options.now ?? Date.now
  const running = new Map<string, Running>()
  const totals: Totals = { total: 0, tenants: 0, finished: 0, copied: 0, start: now() }
  let drawn = 0
  let lastDraw = 0
  let done = false

  const draw = (force = false) => {
    if (mode !== 'tty' || (done && !force)) return
    const t = now()
    if (!force && t - lastDraw < 100) return
    lastDraw = t
    const lines = [...running.values()].map(runningLine)
    lines.push(overallLine(totals, now()))
    stream.write(frameText(lines, drawn))
    drawn = lines.length
  }

  const onEvent = (e: MigrationEvent) => {
    if (mode === 'json') {
      const line = JSON.stringify(e)
      if (options.writeJson) options.writeJson(line)
      else stream.write(`${line}\n`)
      return
    }
    if (mode === 'none') return
    track(e, totals, running, e.type === 'plan' ? now() : 0)
    if (e.type === 'tenant-failed' && mode === 'tty') {
      draw(true)
      stream.write(`\x1b[2Ktenant ${e.tenantId}: FAILED: ${e.error}\n`)
      drawn = 0
    }
    if (mode === 'plain') {
      const line = plainLine(e, () => overallLine(totals, now()))
      if (line !== undefined) stream.write(`${line}\n`)
    }
    draw(e.type !== 'table-copied')
  }
  return {
    onEvent,
    finish() {
      if (mode === 'tty' && !done) draw(true)
      done = true
    },
  }
}
