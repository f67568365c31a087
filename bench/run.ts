/**
 * `npm run bench`: row-level vs schema-per-tenant on the same data, in the same
 * run, as ratios (row-level / schema), plus the per-feature benchmarks.
 *
 *   npm run bench                  # full: 100, 1,000 and 5,000 tenants (< 20 min on 2 cores)
 *   npm run bench -- --quick       # 20, 100 and 300 tenants (< 2 min)
 *   npm run bench -- --sizes=50,500 --no-features
 *
 * Uses DATABASE_URL when set (each tenant count gets a fresh database, created
 * and dropped), else an embedded PostgreSQL. Writes bench/results/<date>.json,
 * bench/results/latest.md and bench/results/scaling.svg.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { cpus, totalmem } from 'node:os'
import { dirname, join } from 'node:path'
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
    'no-features': { type: 'boolean', default: false },
    out: { type: 'string', default: join(root, 'bench', 'results') },
  },
})
const quick = values.quick === true
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

const started = new Date()
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

  const features: FeatureResult[] = []
  if (!values['no-features']) {
    for (const name of availableFeatureBenches(root)) {
      say(`bench/${name}.ts${quick ? ' --quick' : ''}`)
      const env = { ...process.env, DATABASE_URL: adminUrl }
      const f = await runFeatureBench(root, name, {
        quick,
        env,
        timeoutMs: quick ? 90_000 : 300_000,
      })
      if (!f.ok) say(`  bench/${name}.ts: ${f.error}`)
      features.push(f)
    }
  }

  const c = cpus()
  const report: BenchResults = {
    mode: quick ? 'quick' : 'full',
    startedAt: started.toISOString(),
    finishedAt: new Date().toISOString(),
    machine: {
      cpus: c.length,
      cpuModel: c[0]?.model ?? 'unknown',
      memoryBytes: totalmem(),
      platform: `${process.platform} ${process.arch}`,
      node: process.version,
    },
    postgres: { version, server: server ? 'embedded' : 'DATABASE_URL' },
    settings,
    sizes: results,
    features,
  }
  const stamp = started.toISOString().slice(0, 16).replace(':', '')
  const jsonName = `${stamp}Z-${report.mode}.json`
  await mkdir(values.out, { recursive: true })
  await writeFile(join(values.out, jsonName), `${JSON.stringify(report, null, 2)}\n`)
  await writeFile(join(values.out, 'latest.md'), renderMarkdown(report, jsonName))
  await writeFile(join(values.out, 'scaling.svg'), renderScalingSvg(report))

  console.log('')
  console.log('row-level / schema-per-tenant (medians; for times < 1 favours row-level)')
  console.log(renderTable(summarize(report)).join('\n'))
  for (const f of features) {
    console.log(`\nbench/${f.name}.ts${f.ok ? '' : ` (failed: ${f.error})`}`)
    for (const line of f.lines) console.log(`  ${line}`)
  }
  console.log(`\nwrote ${join(values.out, jsonName)}, latest.md, scaling.svg`)
  say('done')
} finally {
  await server?.stop()
}
