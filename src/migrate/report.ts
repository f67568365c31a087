import type { TableCheck } from './checks.js'
import type { CopyGuard } from './guard.js'
import type { SequenceAdjustment } from './sequences.js'
import type { DriftIssue, IdStrategy } from './types.js'

/**
 * One table of one tenant in the end report.
 */
export interface TableReport {
  readonly table: string
  /** Rows copied (or, in a dry run, rows in the source). */
  readonly rows: number
  /** `ok`, `mismatch`, or `skipped` (not verified). */
  readonly checksum: 'ok' | 'mismatch' | 'skipped'
  readonly check?: TableCheck
}

/**
 * One tenant in the end report.
 *
 * @example
 * ```ts
 * const t: TenantReport = { tenantId: '7', schema: 'acme', status: 'migrated', tables: [], rows: 0,
 *   ms: 10, drift: [] }
 * ```
 */
export interface TenantReport {
  readonly tenantId: string
  readonly schema: string
  /** `planned` (dry run), `migrated`, `skipped` (already done), `blocked` (drift), `failed`, `not-run` (`strict` stop). */
  readonly status: 'planned' | 'migrated' | 'skipped' | 'blocked' | 'failed' | 'not-run'
  readonly tables: readonly TableReport[]
  readonly rows: number
  readonly ms: number
  readonly drift: readonly DriftIssue[]
  readonly error?: string
}

/**
 * The end report of a migration run (also what `--json` prints).
 *
 * @example
 * ```ts
 * const report = await migrate({ db: pool, all: true })
 * if (!report.ok) process.exitCode = 1
 * ```
 */
export interface MigrationReport {
  readonly ok: boolean
  readonly dryRun: boolean
  readonly idStrategy: IdStrategy
  readonly guard: CopyGuard | null
  readonly verify: boolean
  readonly tenants: readonly TenantReport[]
  readonly totals: {
    readonly tenants: number
    readonly migrated: number
    readonly skipped: number
    readonly blocked: number
    readonly failed: number
    readonly rows: number
  }
  readonly sequences: readonly SequenceAdjustment[]
  /** Secondary indexes of the shared tables built after the copy (dropped for it by this run or an interrupted one). */
  readonly builtIndexes: readonly string[]
  readonly warnings: readonly string[]
  /** Set when the run stopped before copying (`strict` with drift). */
  readonly aborted?: string
  readonly ms: number
}

/**
 * Renders a report as plain text lines (the CLI's non-JSON output).
 *
 * @example
 * ```ts
 * for (const line of formatReport(report)) console.log(line)
 * // tenant 1 (acme): migrated, 120 rows in 35 ms [author 20 ok, book 100 ok]
 * ```
 */
export function formatReport(report: MigrationReport): string[] {
  const lines: string[] = []
  for (const t of report.tenants) {
    const tables = t.tables.map(
      (x) => `${x.table} ${x.rows}${x.checksum === 'skipped' ? '' : ` ${x.checksum}`}`,
    )
    lines.push(
      `tenant ${t.tenantId} (${JSON.stringify(t.schema)}): ${t.status}, ${t.rows} rows in ${t.ms} ms` +
        (tables.length > 0 ? ` [${tables.join(', ')}]` : ''),
    )
    for (const d of t.drift)
      lines.push(`  ${d.blocking ? 'drift (blocking)' : 'drift'}: ${d.message}`)
    if (t.error) lines.push(`  error: ${t.error}`)
  }
  if (report.builtIndexes.length > 0)
    lines.push(
      `indexes built after the copy: ${report.builtIndexes.map((n) => JSON.stringify(n)).join(', ')}`,
    )
  for (const s of report.sequences) lines.push(`sequence ${s.sequence} moved to ${s.value}`)
  for (const w of report.warnings) lines.push(`warning: ${w}`)
  if (report.aborted) lines.push(`aborted: ${report.aborted}`)
  const n = report.totals
  lines.push(
    `${report.dryRun ? 'dry run: ' : ''}${n.tenants} tenants: ${n.migrated} ${report.dryRun ? 'to migrate' : 'migrated'}, ` +
      `${n.skipped} skipped, ${n.blocked} blocked, ${n.failed} failed; ${n.rows} rows; ` +
      `${report.verify ? 'verified' : 'not verified'}; ${report.ms} ms`,
  )
  return lines
}
