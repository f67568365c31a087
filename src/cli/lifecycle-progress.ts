import type { LifecycleEvent } from '../lifecycle/index.js'
import { bar, type ProgressMode } from './progress.js'

/**
 * A progress renderer for tenant lifecycle events, in the migration's three
 * styles: `tty` (one bar redrawn in place), `plain` (a line per table), `json`
 * (one JSON object per line through `writeJson`), or `none`.
 *
 * @example
 * ```ts
 * const onEvent = lifecycleProgress({ mode: 'plain', stream: process.stderr })
 * await exportTenant({ db, tenantId: '7', out: 'acme.rtar', onEvent })
 * ```
 */
export function lifecycleProgress(options: {
  mode: ProgressMode
  stream: NodeJS.WritableStream
  writeJson?: (line: string) => void
}): (event: LifecycleEvent) => void {
  const { mode, stream } = options
  let total = 0
  let done = 0
  let started = Date.now()
  return (e) => {
    if (mode === 'none') return
    if (mode === 'json') {
      const line = JSON.stringify(e)
      if (options.writeJson) options.writeJson(line)
      else stream.write(`${line}\n`)
      return
    }
    const rate = () => Math.round(done / Math.max(0.001, (Date.now() - started) / 1000))
    switch (e.type) {
      case 'start':
        total = e.rows
        done = 0
        started = Date.now()
        if (mode === 'plain') {
          stream.write(
            `${e.op} tenant ${e.tenantId}: ${e.tables} tables${e.rows ? `, ${e.rows} rows` : ''}\n`,
          )
        }
        break
      case 'table':
        done += e.rows
        if (mode === 'plain') {
          stream.write(
            `${e.op} ${e.index + 1}/${e.of} ${JSON.stringify(e.table)}: ${e.rows} rows\n`,
          )
        } else {
          const frac = total > 0 ? done / total : (e.index + 1) / e.of
          stream.write(
            `\r\x1b[2K${e.op} ${bar(frac, 24)} ${e.index + 1}/${e.of} tables, ${done} rows, ${rate()} rows/s`,
          )
        }
        break
      case 'step':
        stream.write(
          `${mode === 'tty' ? '\r\x1b[2K' : ''}${e.op}: ${e.step}${e.detail ? ` (${e.detail})` : ''}\n`,
        )
        break
      case 'done':
        stream.write(
          `${mode === 'tty' ? '\r\x1b[2K' : ''}${e.op}: done, ${e.rows} rows in ${Math.round(e.ms)} ms\n`,
        )
        break
    }
  }
}
