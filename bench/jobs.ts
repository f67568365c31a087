/**
 * `npx tsx bench/jobs.ts [--quick]`: rowtenancy/jobs against the bare queues, in the same run.
 *
 * 1. Throughput per adapter (pg-boss, graphile-worker, BullMQ): N jobs sent and processed
 *    through the bare queue client (the anchor) and through rowtenancy's wrapper (tenant
 *    sealed and HMAC-signed on send; envelope checked, signature verified, tenant looked up
 *    through a TenantStore with its default 30 s cache, handler run inside runWithTenant),
 *    alternating, median of the repetitions, printed as wrapper/bare.
 * 2. Fairness on the PostgreSQL queues: tenant A sends `A` jobs, then tenant B sends 50;
 *    B's p95 wait (sent -> handler start) without and with the per-tenant limit
 *    (graphile-worker: a named queue per tenant; pg-boss: fair priority).
 *
 * Uses DATABASE_URL (a scratch database is created and dropped) or an embedded PostgreSQL,
 * and the machine Redis (or a redis-server it starts). The machine is shared: absolute
 * numbers move with its load; the ratios are measured in the same run.
 */
import { loadavg } from 'node:os'
import { parseArgs } from 'node:util'
import { Queue, Worker } from 'bullmq'
import { Logger, makeWorkerUtils, run as runGraphile } from 'graphile-worker'
import { Redis } from 'ioredis'
import pg from 'pg'
import '../test/helpers/setup-pg.js'
import PgBoss from 'pg-boss'
import { runWithTenant } from '../src/context/index.js'
import {
  createJobTenancy,
  type JobTenancy,
  tenantAddJob,
  tenantPgBoss,
  tenantProcessor,
  tenantQueue,
  tenantTaskList,
} from '../src/jobs/index.js'
import { installTenantTables, TenantStore } from '../src/tenants/index.js'
import { openTestRedis } from '../test/helpers/redis.js'
import { openScratchDatabase } from './scratch-database.js'

const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false } } })
const quick = values.quick === true
const N = quick ? 300 : 3000
const REPS = quick ? 5 : 7
const A_JOBS = quick ? 1000 : 5000
const B_JOBS = 50
const TENANTS = ['1', '2', '3', '4', '5', '6', '7', '8', '9', '10']
const SEND_CONCURRENCY = 20

interface Harness {
  name: string
  /** Sends n jobs (bare or wrapped), processes them, resolves with the elapsed ms. */
  round(wrapped: boolean, n: number): Promise<number>
  close(): Promise<void>
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const p95 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.ceil(xs.length * 0.95) - 1]!

async function sendAll(n: number, send: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0
  await Promise.all(
    Array.from({ length: SEND_CONCURRENCY }, async () => {
      while (next < n) {
        const i = next++
        await send(i)
      }
    }),
  )
}

/** A counter the handlers bump; `wait(n)` resolves when it reaches n. */
function counter() {
  let count = 0
  let target = Number.POSITIVE_INFINITY
  let done: () => void = () => {}
  return {
    hit() {
      if (++count >= target) done()
    },
    reset(n: number) {
      count = 0
      target = n
      return new Promise<void>((r) => {
        done = r
      })
    },
  }
}

async function pgBossHarness(url: string, jobs: JobTenancy): Promise<Harness> {
  const boss = new PgBoss({ connectionString: url, schema: 'pgboss', max: 8, schedule: false })
  boss.on('error', () => {})
  await boss.start()
  const tb = tenantPgBoss(boss, jobs)
  const c = counter()
  for (const q of ['t_bare', 't_wrapped']) await boss.createQueue(q, { name: q })
  for (let w = 0; w < 4; w++) {
    await boss.work(
      't_bare',
      { batchSize: 50, pollingIntervalSeconds: 0.5 },
      async (batch: any[]) => {
        for (const _job of batch) c.hit()
      },
    )
    await tb.work('t_wrapped', { batchSize: 50, pollingIntervalSeconds: 0.5 }, async () => c.hit())
  }
  return {
    name: 'pg-boss',
    async round(wrapped, n) {
      const all = c.reset(n)
      const t0 = performance.now()
      await sendAll(n, (i) =>
        wrapped
          ? runWithTenant(TENANTS[i % 10]!, () => tb.send('t_wrapped', { i }))
          : boss.send('t_bare', { i, tenantId: TENANTS[i % 10] }),
      )
      await all
      return performance.now() - t0
    },
    close: () => boss.stop({ graceful: false, wait: true }),
  }
}

async function graphileHarness(url: string, jobs: JobTenancy): Promise<Harness> {
  const logger = new Logger(() => () => {})
  const utils = await makeWorkerUtils({ connectionString: url, logger })
  await utils.migrate()
  const c = counter()
  const addJob = tenantAddJob(utils, jobs)
  const runner = await runGraphile({
    connectionString: url,
    concurrency: 8,
    pollInterval: 200,
    noHandleSignals: true,
    logger,
    taskList: {
      t_bare: async () => c.hit(),
      ...tenantTaskList(jobs, { t_wrapped: async () => c.hit() }),
    },
  })
  return {
    name: 'graphile-worker',
    async round(wrapped, n) {
      const all = c.reset(n)
      const t0 = performance.now()
      await sendAll(n, (i) =>
        wrapped
          ? runWithTenant(TENANTS[i % 10]!, () => addJob('t_wrapped', { i }))
          : utils.addJob('t_bare', { i, tenantId: TENANTS[i % 10] }),
      )
      await all
      return performance.now() - t0
    },
    async close() {
      await runner.stop()
      await utils.release()
    },
  }
}

async function bullHarness(jobs: JobTenancy): Promise<Harness> {
  const redis = await openTestRedis()
  const clients: Redis[] = []
  const client = () => {
    const r = new Redis({ host: redis.host, port: redis.port, maxRetriesPerRequest: null })
    clients.push(r)
    return r
  }
  const prefix = redis.prefix
  const c = counter()
  const bare = new Queue('t_bare', { connection: client(), prefix })
  const wrappedQ = new Queue('t_wrapped', { connection: client(), prefix })
  const tq = tenantQueue(wrappedQ, jobs)
  const opts = { connection: client(), prefix, concurrency: 8 }
  const workers = [
    new Worker('t_bare', async () => c.hit(), opts),
    new Worker(
      't_wrapped',
      tenantProcessor(jobs, 't_wrapped', async () => c.hit()),
      {
        ...opts,
        connection: client(),
      },
    ),
  ]
  const clean = { removeOnComplete: true, removeOnFail: true }
  return {
    name: 'BullMQ',
    async round(wrapped, n) {
      const all = c.reset(n)
      const t0 = performance.now()
      await sendAll(n, (i) =>
        wrapped
          ? runWithTenant(TENANTS[i % 10]!, () => tq.add('j', { i }, clean))
          : bare.add('j', { i, tenantId: TENANTS[i % 10] }, clean),
      )
      await all
      return performance.now() - t0
    },
    async close() {
      await Promise.all(workers.map((w) => w.close()))
      for (const q of [bare, wrappedQ]) {
        await q.obliterate({ force: true }).catch(() => {})
        await q.close()
      }
      for (const r of clients) r.disconnect()
      await redis.stop()
    },
  }
}

/** B's waits (ms) when A sent A_JOBS first; `limit` switches the per-tenant limit on. */
async function fairness(
  adapter: 'graphile-worker' | 'pg-boss',
  url: string,
  store: TenantStore,
  limit: false | 'fair' | 'queue',
) {
  const jobs = createJobTenancy({ store, queues: { fair: true } })
  const waits: Record<string, number[]> = { '1': [], '2': [] }
  let seen = 0
  let finish: () => void = () => {}
  const finished = new Promise<void>((r) => {
    finish = r
  })
  const handler = async (payload: { sentAt: number }, info: { tenantId: string | undefined }) => {
    waits[info.tenantId!]!.push(Date.now() - payload.sentAt)
    await new Promise((r) => setTimeout(r, 2))
    if (info.tenantId === '2' && ++seen === B_JOBS) finish()
  }
  const send = async (): Promise<(tenant: string) => Promise<unknown>> => {
    if (adapter === 'graphile-worker') {
      const logger = new Logger(() => () => {})
      const utils = await makeWorkerUtils({ connectionString: url, logger })
      await utils.migrate()
      const addJob = tenantAddJob(
        utils,
        jobs,
        limit === 'queue' ? { tenantQueue: 2 } : { fair: limit === 'fair' },
      )
      start = async () => {
        const runner = await runGraphile({
          connectionString: url,
          concurrency: 4,
          pollInterval: 200,
          noHandleSignals: true,
          logger,
          taskList: tenantTaskList(jobs, { fair: handler }),
        })
        stop = async () => {
          await runner.stop()
          await utils.release()
        }
      }
      return (t) => runWithTenant(t, () => addJob('fair', { sentAt: Date.now() }))
    }
    const boss = new PgBoss({ connectionString: url, schema: 'pgboss', max: 8, schedule: false })
    boss.on('error', () => {})
    await boss.start()
    await boss.deleteQueue('fair').catch(() => {})
    await boss.createQueue('fair', { name: 'fair' })
    const tb = tenantPgBoss(boss, jobs)
    stop = () => boss.stop({ graceful: false, wait: true })
    start = async () => {
      for (let w = 0; w < 4; w++) {
        await tb.work('fair', { batchSize: 5, pollingIntervalSeconds: 0.5 }, handler)
      }
    }
    return (t) =>
      runWithTenant(t, () => tb.send('fair', { sentAt: Date.now() }, { fair: limit === 'fair' }))
  }
  let stop: () => Promise<void> = async () => {}
  let start: () => Promise<void> = async () => {}
  const sendAs = await send()
  // A's backlog is in the queue before the workers start; B sends once they run.
  await sendAll(A_JOBS, () => sendAs('1'))
  const t0 = Date.now()
  await start()
  await sendAll(B_JOBS, () => sendAs('2'))
  await finished
  const total = Date.now() - t0
  const aDone = waits['1']!.length
  await stop()
  return { bP95: p95(waits['2']!), aDone, total }
}

/** CPU cost of the wrapper alone: seal (sign) + admit (verify, cached tenant lookup) per job. */
async function wrapperCost(jobs: JobTenancy): Promise<void> {
  const n = 20_000
  const payload = { invoiceId: 12, lines: [1, 2, 3], note: 'x'.repeat(64) }
  for (let i = 0; i < 1000; i++)
    await jobs.admit(
      't_wrapped',
      runWithTenant('1', () => jobs.seal('t_wrapped', payload)),
      'w',
    )
  const cpu0 = process.cpuUsage()
  for (let i = 0; i < n; i++) {
    const data = runWithTenant(TENANTS[i % 10]!, () => jobs.seal('t_wrapped', payload))
    await jobs.admit('t_wrapped', JSON.parse(JSON.stringify(data)), 'w')
  }
  const cpu = process.cpuUsage(cpu0)
  const us = (cpu.user + cpu.system) / n
  console.log(
    `\nwrapper CPU time per job (seal + sign + JSON round trip + verify + cached tenant lookup; process CPU, not wall): ${us.toFixed(1)} µs`,
  )
}

async function main() {
  const scratch = await openScratchDatabase('rt_bench_jobs')
  const admin = new pg.Pool({ connectionString: scratch.url, max: 4 })
  try {
    await installTenantTables(admin, { idType: 'bigint' })
    await admin.query(
      `insert into tenants (id, slug, name) select g, 't' || g, 'T' || g from generate_series(1, 10) g`,
    )
    const store = new TenantStore({ db: admin })
    const jobs = createJobTenancy({
      store,
      secret: 'bench-secret-0123456789abcdef',
      queues: { t_wrapped: true },
    })
    console.log(
      `rowtenancy/jobs bench (${quick ? 'quick' : 'full'}): ${N} jobs x ${REPS} rounds per variant; ` +
        `server: ${scratch.embedded ? 'embedded PostgreSQL' : 'DATABASE_URL'}; loadavg ${loadavg()
          .map((l) => l.toFixed(1))
          .join(' ')} (shared machine)`,
    )
    await wrapperCost(jobs)
    console.log(
      '\nthroughput, send + process, jobs/s (median); anchor: the bare queue in the same run',
    )
    for (const make of [
      () => pgBossHarness(scratch.url, jobs),
      () => graphileHarness(scratch.url, jobs),
      () => bullHarness(jobs),
    ]) {
      const h = await make()
      try {
        await h.round(false, 100) // warm-up
        await h.round(true, 100)
        const bare: number[] = []
        const wrapped: number[] = []
        const cpuOf = async (w: boolean) => {
          const c0 = process.cpuUsage()
          const ms = await h.round(w, N)
          const c = process.cpuUsage(c0)
          ;(w ? wrappedCpu : bareCpu).push((c.user + c.system) / N)
          return ms
        }
        const bareCpu: number[] = []
        const wrappedCpu: number[] = []
        for (let r = 0; r < REPS; r++) {
          // alternate which goes first, so load drifts hit both alike
          if (r % 2 === 0) bare.push(await cpuOf(false))
          wrapped.push(await cpuOf(true))
          if (r % 2 === 1) bare.push(await cpuOf(false))
        }
        const b = N / (median(bare) / 1000)
        const w = N / (median(wrapped) / 1000)
        console.log(
          `  ${h.name.padEnd(16)} bare ${b.toFixed(0).padStart(5)}/s  rowtenancy ${w.toFixed(0).padStart(5)}/s  ` +
            `ratio ${(w / b).toFixed(3)} (overhead ${((1 - w / b) * 100).toFixed(1)}%); ` +
            `app-process CPU per job ${median(bareCpu).toFixed(0)} vs ${median(wrappedCpu).toFixed(0)} µs`,
        )
      } finally {
        await h.close()
      }
    }
    console.log(
      `\nfairness: tenant A sends ${A_JOBS} jobs, then tenant B ${B_JOBS}; 4 workers (pg-boss: 4 x batch 5), 2 ms jobs; ` +
        "A's backlog queued before the workers start; B's p95 wait (sent -> start); anchor: the same queue without the limit",
    )
    const variants = [
      ['graphile-worker', 'fair', 'fair priority'],
      ['graphile-worker', 'queue', 'tenantQueue: 2'],
      ['pg-boss', 'fair', 'fair priority'],
    ] as const
    const anchors = new Map<string, Awaited<ReturnType<typeof fairness>>>()
    for (const [adapter, limit, label] of variants) {
      const table = adapter === 'pg-boss' ? 'pgboss.job' : 'graphile_worker._private_jobs'
      let without = anchors.get(adapter)
      if (!without) {
        without = await fairness(adapter, scratch.url, store, false)
        anchors.set(adapter, without)
        await admin.query(`delete from ${table}`)
      }
      const withLimit = await fairness(adapter, scratch.url, store, limit)
      await admin.query(`delete from ${table}`)
      console.log(
        `  ${adapter.padEnd(16)} B p95: no limit ${without.bP95} ms, ${label} ${withLimit.bP95} ms ` +
          `(x${(without.bP95 / Math.max(1, withLimit.bP95)).toFixed(1)} sooner); ` +
          `B's last job done ${(without.total / 1000).toFixed(1)} s vs ${(withLimit.total / 1000).toFixed(1)} s after the workers started, ` +
          `A's jobs done by then: ${without.aDone} vs ${withLimit.aDone}`,
      )
    }
  } finally {
    await admin.end()
    await scratch.close()
  }
}

await main()
