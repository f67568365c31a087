/**
 * Where a command writes its results: human lines on a terminal, or JSON for
 * machines (`--json`). Diagnostics go to stderr so stdout stays parseable.
 *
 * @example
 * ```ts
 * out.line('2 tenants')
 * out.table([{ id: '1', slug: 'acme' }])
 * out.json({ tenants: [] })
 * ```
 */
export interface Output {
  line(text: string): void
  warn(text: string): void
  json(value: unknown): void
  table(rows: readonly Record<string, unknown>[], columns?: readonly string[]): void
}

/**
 * The default {@link Output} on process.stdout / process.stderr.
 *
 * @example
 * ```ts
 * const out = createOutput()
 * ```
 */
export function createOutput(
  stdout: NodeJS.WritableStream = process.stdout,
  stderr: NodeJS.WritableStream = process.stderr,
): Output {
  return {
    line: (text) => void stdout.write(`${text}\n`),
    warn: (text) => void stderr.write(`${text}\n`),
    json: (value) =>
      void stdout.write(
        `${JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v), 2)}\n`,
      ),
    table(rows, columns) {
      if (rows.length === 0) {
        stdout.write('(none)\n')
        return
      }
      const cols = columns ?? Object.keys(rows[0]!)
      const cell = (v: unknown) =>
        v instanceof Date ? v.toISOString() : Array.isArray(v) ? v.join(',') : String(v ?? '')
      const widths = cols.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)))
      const fmt = (vals: readonly string[]) =>
        vals
          .map((v, i) => v.padEnd(widths[i]!))
          .join('  ')
          .trimEnd()
      stdout.write(`${fmt(cols)}\n`)
      for (const r of rows) stdout.write(`${fmt(cols.map((c) => cell(r[c])))}\n`)
    },
  }
}
