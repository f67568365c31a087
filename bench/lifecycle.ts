/**
 * `npx tsx bench/lifecycle.ts [--quick]`: tenant export and import throughput
 * against raw COPY of the same rows in the same run, and peak memory for a
 * small and a 10x larger tenant.
 *
 * Anchors (measured in this run, same rows, same disk):
 * - export: `COPY (select cols from t where tenant_id = X) TO STDOUT` per table,
 *   streamed to a file. rowtenancy's export adds the manifest (counts and
 *   checksums in the same snapshot) and the archive framing.
 * - import: `COPY t (cols) FROM STDIN` per table from those files in one
 *   transaction (foreign keys checked by their triggers, as psql's \copy does);
 *   also printed against the same COPY with triggers off (replica role, no
 *   foreign-key check at all: a floor no verified import can reach).
 *   rowtenancy's import adds the hashes, the drift check, the after-load
 *   counts, checksums and foreign-key check, and the sequence step.
 * Goals: export >= 0.8x, import with verify >= 0.6x of the anchor.
 * Peak memory: RSS sampled every 5 ms while one export + one import run.
 */
import { createReadStream, createWriteStream } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { parseArgs } from 'node:util'
import pg from 'pg'
import { from as copyFrom, to as copyTo } from 'pg-copy-streams'
import { eraseTenant, exportTenant, importTenant } from '../src/lifecycle/index.js'
import { installTenantTables } from '../src/tenants/index.js'
import { openScratchDatabase } from './scratch-database.js'

const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false } } })
const quick = values.quick === true
const ROWS = Number(process.env.BENCH_ROWS ?? (quick ? 50_000 : 100_000))
const MEMORY_SIZES = quick ? [50_000, 300_000] : [100_000, 1_000_000]
const REPS = 3

const DDL = [
  `create table items (tenant_id bigint not null references tenants (id), id bigint not null, name text not null,
     amount numeric(12, 2), created_at timestamptz not null, payload bytea, primary key (tenant_id, id))`,
  `create table notes (tenant_id bigint not null references tenants (id), id bigint not null, item_id bigint not null,
     body text, primary key (tenant_id, id), foreign key (tenant_id, item_id) references items (tenant_id, id))`,
  // The tenant-leading index every foreign key should have (erase deletes through it).
  'create index on notes (tenant_id, item_id)',
]
const COLUMNS: Record<string, string> = {
  items: 'tenant_id, id, name, amount, created_at, payload',
  notes: 'tenant_id, id, item_id, body',
}

async function schema(pool: pg.Pool): Promise<void> {
  await installTenantTables(pool, { idType: 'bigint' })
  for (const s of DDL) await pool.query(s)
}

async function seed(pool: pg.Pool, tenant: number, rows: number): Promise<void> {
  await pool.query(`insert into tenants (id, slug, name) values ($1, $2, $3)`, [
    tenant,
    `t${tenant}`,
    `T${tenant}`,
  ])
  await pool.query(
    `insert into items select $1, i, 'item ' || i || ' ' || md5(i::text), (i % 10000) / 3.0,
       timestamptz '2024-01-01' + i * interval '1 minute', decode(md5(i::text), 'hex')
       from generate_series(1, $2::int) i`,
    [tenant, Math.ceil(rows / 2)],
  )
  await pool.query(
    `insert into notes select $1, i, 1 + i % $2::int, 'note ' || i from generate_series(1, $2::int) i`,
    [tenant, Math.floor(rows / 2)],
  )
  await pool.query('analyze')
}

/** Samples RSS while `fn` runs; returns its time and the peak RSS (MB). */
async function measured<T>(
  fn: () => Promise<T>,
): Promise<{ ms: number; peakMb: number; value: T }> {
  global.gc?.()
  let peak = process.memoryUsage().rss
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss)
  }, 5)
  const started = performance.now()
  try {
    const value = await fn()
    return { ms: performance.now() - started, peakMb: peak / 2 ** 20, value }
  } finally {
    clearInterval(timer)
  }
}

async function rawExport(pool: pg.Pool, tenant: number, dir: string): Promise<void> {
  const c = await pool.connect()
  try {
    await c.query('begin isolation level repeatable read read only')
    for (const t of ['items', 'notes']) {
      await pipeline(
        c.query(
          copyTo(`copy (select ${COLUMNS[t]} from ${t} where tenant_id = ${tenant}) to stdout`),
        ),
        createWriteStream(join(dir, `${t}.copy`)),
      )
    }
    await c.query('commit')
  } finally {
    c.release()
  }
}

async function rawImport(
  pool: pg.Pool,
  tenant: number,
  dir: string,
  replica = false,
): Promise<void> {
  const c = await pool.connect()
  try {
    await c.query('begin')
    if (replica) await c.query('set local session_replication_role = replica')
    await c.query(`insert into tenants (id, slug, name) values ($1, $2, $3)`, [
      tenant,
      `t${tenant}`,
      `T${tenant}`,
    ])
    for (const t of ['items', 'notes']) {
      await pipeline(
        createReadStream(join(dir, `${t}.copy`)),
        c.query(copyFrom(`copy ${t} (${COLUMNS[t]}) from stdin`)),
      )
    }
    await c.query('commit')
  } finally {
    c.release()
  }
}

async function clear(pool: pg.Pool, tenant: number): Promise<void> {
  await pool.query('delete from notes where tenant_id = $1', [tenant])
  await pool.query('delete from items where tenant_id = $1', [tenant])
  await pool.query('delete from tenants where id = $1', [tenant])
  await pool.query('vacuum notes, items')
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

async function main(): Promise<void> {
  const src = await openScratchDatabase('rt_bench_life_src')
  const dst = await openScratchDatabase('rt_bench_life_dst')
  const a = new pg.Pool({ connectionString: src.url, max: 3 })
  const b = new pg.Pool({ connectionString: dst.url, max: 3 })
  // An idle client ended by the server (another run's clean-up) must not end this process.
  a.on('error', () => {})
  b.on('error', () => {})
  const dir = await mkdtemp(join(tmpdir(), 'rt-bench-life-'))
  try {
    await schema(a)
    await schema(b)
    // Tenant 1 is measured; tenant 2 (same size) shares the tables, so the tenant filter matters.
    await seed(a, 1, ROWS)
    await seed(a, 2, ROWS)
    const archive = join(dir, 'tenant.rtar')
    const times = {
      rawExport: [] as number[],
      export: [] as number[],
      rawImport: [] as number[],
      rawImportReplica: [] as number[],
      import: [] as number[],
    }
    for (let rep = 0; rep < REPS; rep++) {
      // Alternate the order so neither side always runs on a warmer cache.
      const exportPair = [
        async () => times.rawExport.push((await measured(() => rawExport(a, 1, dir))).ms),
        async () =>
          times.export.push(
            (await measured(() => exportTenant({ db: a, tenantId: 1, out: archive }))).ms,
          ),
      ]
      for (const f of rep % 2 === 0 ? exportPair : [...exportPair].reverse()) await f()
      const importPair = [
        async () => {
          times.rawImport.push((await measured(() => rawImport(b, 1, dir))).ms)
          await clear(b, 1)
        },
        async () => {
          times.import.push((await measured(() => importTenant({ db: b, in: archive }))).ms)
          await clear(b, 1)
        },
        async () => {
          times.rawImportReplica.push((await measured(() => rawImport(b, 1, dir, true))).ms)
          await clear(b, 1)
        },
      ]
      for (const f of rep % 2 === 0 ? importPair : [...importPair].reverse()) await f()
    }
    const exportRatio = median(times.rawExport) / median(times.export)
    const importRatio = median(times.rawImport) / median(times.import)
    console.log(`tenant of ${ROWS} rows (2 tables), ${REPS} repetitions, medians:`)
    console.log(
      `  export: raw COPY TO ${median(times.rawExport).toFixed(0)} ms, rowtenancy ${median(times.export).toFixed(0)} ms -> ${exportRatio.toFixed(2)}x of raw throughput (goal >= 0.8x)`,
    )
    console.log(
      `  import: raw COPY FROM ${median(times.rawImport).toFixed(0)} ms, rowtenancy (with verify) ${median(times.import).toFixed(0)} ms -> ${importRatio.toFixed(2)}x of raw throughput (goal >= 0.6x)`,
    )
    const replicaRatio = median(times.rawImportReplica) / median(times.import)
    console.log(
      `  import vs raw COPY FROM with triggers off (session_replication_role = replica, no FK check at all): ${median(times.rawImportReplica).toFixed(0)} ms -> ${replicaRatio.toFixed(2)}x`,
    )
    console.log('peak RSS of this process during one export + one import:')
    for (const [i, size] of MEMORY_SIZES.entries()) {
      const id = 10 + i
      await seed(a, id, size)
      const ex = await measured(() => exportTenant({ db: a, tenantId: id, out: archive }))
      const im = await measured(() => importTenant({ db: b, in: archive }))
      console.log(
        `  ${String(size).padStart(9)} rows: export ${ex.ms.toFixed(0)} ms, peak ${ex.peakMb.toFixed(0)} MB; import ${im.ms.toFixed(0)} ms, peak ${im.peakMb.toFixed(0)} MB`,
      )
      await eraseTenant({ db: b, tenantId: id })
      await eraseTenant({ db: a, tenantId: id })
    }
  } finally {
    await a.end()
    await b.end()
    await src.close()
    await dst.close()
    await rm(dir, { recursive: true, force: true })
  }
}

await main()
