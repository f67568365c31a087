/**
 * `npm run bench`: row-level vs schema-per-tenant on the same data, in the same
 * run, as ratios (row-level / schema), plus the per-feature benchmarks.
 *
 *   npm run bench                  # full: 100, 1,000 and 5,000 tenants, then the
 *                                  # per-feature benchmarks' --quick runs (< 20 min on 2 cores)
 *   npm run bench -- --features-full   # the feature benchmarks' full runs instead (much longer)
 *   npm run bench -- --quick       # 20, 100 and 300 tenants (< 1 min), no feature benchmarks
 *   npm run bench -- --quick --features   # and the feature benchmarks' --quick runs (~2.5 min more)
 *   npm run bench -- --sizes=50,500 --no-features
 *   npm run bench -- --render=bench/results/<date>.json   # redraw latest.md + scaling.svg only
 *
 * Uses DATABASE_URL when set (each tenant count gets a fresh database, created
 * and dropped), else an embedded PostgreSQL. Writes bench/results/<date>.json,
 * bench/results/latest.md and bench/results/scaling.svg.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { cpus, loadavg, totalmem } from 'node:os'
import { basename, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import pg from 'pg'
import { startEmbeddedPostgres } from '../test/helpers/embedded-server.js'
import { availableFeatureBenches, runFeatureBench } from './layouts/features.js'
import { measureSize } from './layouts/measure-size.js'
import { renderMarkdown, renderTable } from './layouts/report.js'
import type { BenchResults, FeatureResult, SizeResult } from './layouts/results.js'
import { renderScalingSvg } from './layouts/scaling-chart.js'
import { summarize } from './layouts/summary.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    sizes: { type: 'string' },
    features: { type: 'boolean' },
    'no-features': { type: 'boolean', default: false },
    'features-full': { type: 'boolean', default: false },
    out: { type: 'string', default: join(root, 'bench', 'results') },
    render: { type: 'string' },
  },
})
const quick = values.quick === true
// The feature benchmarks' own --quick runs take ~2.5 min on 2 cores: past the --quick budget.
const withFeatures = values['no-features'] ? false : (values.features ?? !quick)
const sizes = values.sizes
  ? values.sizes.split(',').map((s) => Number(s.trim()))
  : quick
    ? [20, 100, 300]
    : [100, 1000, 5000]
if (sizes.some((n) => !Number.isSafeInteger(n) || n < 2 || n > 20_000)) {
  console.error('error: --sizes takes tenant counts from 2 to 20000, e.g. --sizes=100,1000')
  process.exit(2)
}
const settings: BenchResults['settings'] = {
  scale: 0.05,
  seed: 1,
  repetitions: 3,
  pool: 10,
  concurrency: 20,
  requestMs: quick ? 400 : 2000,
  readShare: 0.8,
}

/** Writes the JSON (unless it is the input), latest.md and scaling.svg; prints the table. */
async function publish(report: BenchResults, jsonName: string, writeJson: boolean): Promise<void> {
  const out = values.out
  await mkdir(out, { recursive: true })
  if (writeJson) await writeFile(join(out, jsonName), `${JSON.stringify(report, null, 2)}\n`)
  await writeFile(join(out, 'latest.md'), renderMarkdown(report, jsonName))
  await writeFile(join(out, 'scaling.svg'), renderScalingSvg(report))
  console.log('')
  console.log('row-level / schema-per-tenant (medians; for times < 1 favours row-level)')
  console.log(renderTable(summarize(report)).join('\n'))
  for (const f of report.features) {
    console.log(`\nbench/${f.name}.ts${f.ok ? '' : ` (failed: ${f.error})`}`)
    for (const line of f.lines) console.log(`  ${line}`)
  }
  const files = [...(writeJson ? [jsonName] : []), 'latest.md', 'scaling.svg']
  console.log(`\nwrote ${files.join(', ')} in ${out}`)
}

if (values.render) {
  const report = JSON.parse(await readFile(values.render, 'utf8')) as BenchResults
  await publish(report, basename(values.render), false)
  process.exit(0)
}

const started = new Date()
const loadAtStart = loadavg()[0]!
const t0 = performance.now()
const say = (line: string) =>
  process.stderr.write(`[${((performance.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${line}\n`)

const server = process.env.DATABASE_URL ? undefined : await startEmbeddedPostgres()
const adminUrl = process.env.DATABASE_URL ?? server!.url
try {
  const admin = new pg.Client({ connectionString: adminUrl })
  await admin.connect()
  const version = (await admin.query('select version() as v')).rows[0].v as string
  await admin.end()
  say(`${quick ? 'quick' : 'full'} run on ${version.split(',')[0]}; tenants: ${sizes.join(', ')}`)

  const results: SizeResult[] = []
  const features: FeatureResult[] = []
  const c = cpus()
  const stamp = started.toISOString().slice(0, 16).replace(':', '')
  const jsonName = `${stamp}Z-${quick ? 'quick' : 'full'}.json`
  const snapshot = (): BenchResults => ({
    mode: quick ? 'quick' : 'full',
    startedAt: started.toISOString(),
    finishedAt: new Date().toISOString(),
    machine: {
      cpus: c.length,
      cpuModel: c[0]?.model ?? 'unknown',
      memoryBytes: totalmem(),
      platform: `${process.platform} ${process.arch}`,
      node: process.version,
      loadAverage: { start: loadAtStart, end: loadavg()[0]! },
    },
    postgres: { version, server: server ? 'embedded' : 'DATABASE_URL' },
    settings,
    sizes: results,
    features,
  })
  for (const tenants of sizes) {
    say(`${tenants} tenants`)
    results.push(
      await measureSize(adminUrl, tenants, {
        scale: settings.scale,
        seed: settings.seed,
        repetitions: settings.repetitions,
        requests: {
          pool: settings.pool,
          concurrency: settings.concurrency,
          ms: settings.requestMs,
          readShare: settings.readShare,
          repetitions: settings.repetitions,
          seed: settings.seed,
        },
        say,
      }),
    )
  }
  // Keep what is measured so far, should a feature benchmark hang or the run be stopped.
  await mkdir(values.out, { recursive: true })
  await writeFile(join(values.out, jsonName), `${JSON.stringify(snapshot(), null, 2)}\n`)

  if (withFeatures) {
    // Their full runs are sized for their own budgets; together they would take
    // the whole run past 20 minutes, so their --quick runs unless asked.
    const featureQuick = !values['features-full']
    for (const name of availableFeatureBenches(root)) {
      say(`bench/${name}.ts${featureQuick ? ' --quick' : ''}`)
      const f = await runFeatureBench(root, name, {
        quick: featureQuick,
        env: { ...process.env, DATABASE_URL: adminUrl },
        timeoutMs: featureQuick ? 120_000 : 600_000,
      })
      if (!f.ok) say(`  bench/${name}.ts: ${f.error}`)
      features.push(f)
    }
  }
  await publish(snapshot(), jsonName, true)
  say('done')
} finally {
  await server?.stop()
}
