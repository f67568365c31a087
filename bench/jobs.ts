/**
 * `npx tsx bench/jobs.ts [--quick | --full] [--only cpu,throughput,fairness] [--jobs N] [--bull-jobs N]
 *   [--rounds R] [--bull-rounds R] [--adapters pg-boss,graphile-worker,BullMQ] [--unsigned | --vs-unsigned] [--aa] [--note N]
 *   [--profile FILE]`:
 * rowtenancy/jobs against the bare queues, in the same run. Without `--quick` (or with
 * `--full`) the fairness run has the issue's full size (5,000 jobs of tenant A).
 *
 * 1. cpu: the wrapper's own steps per job without a queue (seal, admit, process), process CPU.
 * 2. throughput per adapter (pg-boss, graphile-worker, BullMQ): N jobs sent and processed
 *    through the bare queue client (the anchor) and through rowtenancy's wrapper (tenant
 *    sealed and HMAC-signed on send (not with `--unsigned`); envelope checked, signature verified, tenant looked up
 *    through a TenantStore with its default 30 s cache, handler run inside runWithTenant),
 *    in rounds whose order rotates; the ratio is the median of the rounds' ratios (with its 90%
 *    bootstrap interval: with `--aa` the bare-vs-bare line shows what noise alone spans), and the
 *    process CPU per job of each side (and the median of the rounds' CPU ratios) is printed;
 *    for BullMQ also Redis's CPU per job (median of rounds, from `INFO cpu`: a shared Redis
 *    counts others' commands too), which the process CPU does not include.
 *    BullMQ's rounds are short and many (`--bull-jobs`, 2,000, `--bull-rounds`, 200 by default:
 *    see BULL_N);
 *    pg-boss's are 5,000 jobs (`--boss-jobs`, in batches of `--boss-batch`, 500: see BOSS_BATCH);
 *    every pg-boss side has a queue of its own, its workers are woken once its last job is
 *    sent (see `sent`), and pg-boss's job table is vacuumed after every round, untimed (`settle`).
 *    Two anchors, both the bare queue in this process: with AsyncLocalStorage on (as in any
 *    app that uses rowtenancy: on Node 20 one AsyncLocalStorage used once runs a hook for every
 *    promise of the process, the bare queue's included), and with it off (an app that never
 *    uses AsyncLocalStorage): the difference is what the tenant context costs the queue itself.
 *    With `--vs-unsigned` (pg-boss, BullMQ) a fourth side runs the wrapper without a secret on its own
 *    queue, in the same rotation, so what signing itself costs is read against it. With `--aa`
 *    (pg-boss, BullMQ) one more side runs the bare queue again on its own queue: bare against bare, the
 *    run's noise floor for the ratios above. Every side but bare-no-als sends from inside the
 *    job's tenant context (an app sends from its request's, whichever client it calls), and
 *    every side's worker calls one async handler per job and awaits it (pg-boss's bare batch
 *    callback too, job by job, as the wrapper does). Payloads are `{ i }` (the bare queue's
 *    `{ i, tenantId }`); `--note N` adds a text of N characters to both (a job's data over 64
 *    bytes is what Redis stores in a hash table instead of a listpack, which costs Redis more:
 *    a signed envelope alone crosses that line, at 89 bytes for `{ i }`, 58 unsigned, where the
 *    bare job is 27; with `--note 24` the wrapper's jobs are over 64 bytes, signed or not, and
 *    the bare queue's are not, at 61; with `--note 64` every side's are over).
 * 3. fairness on the PostgreSQL queues: tenant A sends `A` jobs, then tenant B sends 50;
 *    B's p95 wait (sent -> handler start) without and with the per-tenant limit
 *    (graphile-worker: fair priority and a named queue per tenant; pg-boss: fair priority).
 *
 * Uses DATABASE_URL (a scratch database is created and dropped) or an embedded PostgreSQL,
 * and the machine Redis (or a redis-server it starts). The machine is shared: absolute
 * numbers move with its load; the ratios are measured in the same run.
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import { writeFile } from 'node:fs/promises'
import { Session } from 'node:inspector/promises'
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

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    full: { type: 'boolean', default: false },
    only: { type: 'string' },
    jobs: { type: 'string' },
    'bull-jobs': { type: 'string' },
    'bull-rounds': { type: 'string' },
    'boss-jobs': { type: 'string' },
    'boss-batch': { type: 'string' },
    rounds: { type: 'string' },
    adapters: { type: 'string' },
    profile: { type: 'string' },
    unsigned: { type: 'boolean', default: false },
    'vs-unsigned': { type: 'boolean', default: false },
    aa: { type: 'boolean', default: false },
    note: { type: 'string' },
  },
})
const quick = values.quick === true && values.full !== true
const N = Number(values.jobs ?? (quick ? 300 : 1000))
/**
 * BullMQ's rounds: short and many. This machine's CPU runs phases of several
 * seconds at up to half speed (process CPU per job doubles, in a bare queue
 * alone); a 20,000-job round (2-4 s per side, 10-20 s between a side and its
 * anchor) lands one side in a slow phase and the other not, and 40 such rounds
 * read -8% to +13% for the same sides. 2,000-job rounds (0.2-0.4 s) put the
 * sides of a round in the same phase: 200 of them read bare against bare
 * within 2.5%.
 */
const BULL_N = Number(values['bull-jobs'] ?? values.jobs ?? (quick ? 1000 : 2000))
/**
 * pg-boss 10's worker waits out its polling interval (0.5 s at the least) after every fetch,
 * full batch or not, so 4 workers of batches of 50 take at most 400 jobs/s: a round bound by
 * that rate reads ~0% whatever either side costs. Batches of 500 lift the cap to 4,000 jobs/s,
 * over what sending reaches here, and rounds of 5,000 jobs last seconds, not a few polls.
 */
const BOSS_BATCH = Number(values['boss-batch'] ?? 500)
const BOSS_N = Number(values['boss-jobs'] ?? values.jobs ?? (quick ? 1000 : 5000))
const REPS = Number(values.rounds ?? (quick ? 5 : 7))
/** BullMQ's number of rounds (see BULL_N). */
const BULL_REPS = Number(values['bull-rounds'] ?? (values.rounds ? REPS : quick ? 30 : 200))
const A_JOBS = quick ? 1000 : 5000
const B_JOBS = 50
const PARTS = new Set((values.only ?? 'cpu,throughput,fairness').split(','))
const ADAPTERS = values.adapters?.split(',')
const TENANTS = ['1', '2', '3', '4', '5', '6', '7', '8', '9', '10']
const SEND_CONCURRENCY = 20

/** One queue set up twice: bare (the anchor) and through rowtenancy's wrapper. */
interface Harness {
  name: string
  /** What the anchor is, printed with the figures. */
  anchor: string
  /** Jobs per round. */
  n: number
  /** Rounds. */
  reps: number
  /** Sends job `i` as `side`; every processed job calls the shared counter's `hit`. */
  send(side: Side, i: number): Promise<unknown>
  /** Whether it has the `wrapped-unsigned` side. */
  unsignedSide?: boolean
  /** Whether it has the `bare-again` side (`--aa`). */
  aaSide?: boolean
  /** The queue server's CPU time so far, µs (Redis: `INFO cpu`), where the bench can read it. */
  serverCpu?: () => Promise<number>
  /** Called once a round's jobs are all sent: wakes the side's workers where they poll. */
  sent?(side: Side): void
  /** Called after every round, untimed: brings the queue's tables back to a steady state. */
  settle?(): Promise<void>
  close(): Promise<void>
}

const median = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}
/**
 * The 90% bootstrap interval of the median of `xs` (2,000 resamples of the rounds,
 * a fixed seed so a rerun on the same figures prints the same interval).
 */
function medianInterval(xs: number[]): [number, number] {
  let seed = 0x2545f491
  const next = () => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0
    return seed / 2 ** 32
  }
  const medians: number[] = []
  for (let b = 0; b < 2000; b++) {
    medians.push(median(xs.map(() => xs[Math.floor(next() * xs.length)]!)))
  }
  medians.sort((a, b) => a - b)
  return [medians[100]!, medians[1899]!]
}
const p95 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.ceil(xs.length * 0.95) - 1]!
const tenantOf = (i: number) => TENANTS[i % TENANTS.length]!
/** `--note N`: a text of N characters in every payload (0: none, the smallest job). */
const NOTE = 'x'.repeat(Number(values.note ?? 0))
/** A job's payload through the wrapper, and the bare queue's (the same, plus the tenant by hand). */
const payloadOf = (i: number) => (NOTE ? { i, note: NOTE } : { i })
const bareOf = (i: number) =>
  NOTE ? { i, note: NOTE, tenantId: tenantOf(i) } : { i, tenantId: tenantOf(i) }

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

/** A counter the handlers bump; `reset(n)` resolves when it reaches n. */
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

type Counter = ReturnType<typeof counter>

type Side = 'bare' | 'wrapped' | 'bare-no-als' | 'wrapped-unsigned' | 'bare-again'

/**
 * Sends n jobs and waits until all ran: wall ms and process CPU µs per job.
 * `bare-no-als` runs the bare queue with AsyncLocalStorage's hook off; the
 * other two with it on (runWithTenant turns it on).
 */
async function round(h: Harness, c: Counter, side: Side, n: number) {
  if (side === 'bare-no-als') await asyncLocalStorageOff()
  else runWithTenant(TENANTS[0]!, () => undefined)
  const all = c.reset(n)
  const server0 = await h.serverCpu?.()
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  // every side but bare-no-als sends from inside the job's tenant context, as an app's request
  // does whichever queue client it calls: the wrapper reads that context, it does not make it
  await sendAll(n, (i) =>
    side === 'bare-no-als' ? h.send(side, i) : runWithTenant(tenantOf(i), () => h.send(side, i)),
  )
  h.sent?.(side)
  await all
  const ms = performance.now() - t0
  const cpu = process.cpuUsage(cpu0)
  const server1 = await h.serverCpu?.()
  const serverPerJob = server0 === undefined ? Number.NaN : (server1! - server0) / n
  await h.settle?.()
  return { ms, cpuPerJob: (cpu.user + cpu.system) / n, serverPerJob }
}

/**
 * The AsyncLocalStorage instances used so far, so a round can turn their hook
 * off: on Node 20 (async_hooks) an instance is enabled by its first `run` and
 * stays so, and while one is enabled every promise of the process runs its
 * hook. This reaches into Node's own `_enable`; where it is missing (a Node
 * whose AsyncLocalStorage has no per-promise hook) the bare-no-als side is
 * left out and the run says so.
 */
const enabledStorages = new Set<AsyncLocalStorage<unknown>>()
const storageProto = AsyncLocalStorage.prototype as unknown as { _enable?: () => void }
const canTurnOff = typeof storageProto._enable === 'function'
if (canTurnOff) {
  const enable = storageProto._enable!
  storageProto._enable = function (this: AsyncLocalStorage<unknown>) {
    enabledStorages.add(this)
    return enable.call(this)
  }
}

async function asyncLocalStorageOff(): Promise<void> {
  for (const storage of enabledStorages) storage.disable()
  enabledStorages.clear()
  await null // Node turns the promise hook off in a microtask
  // while any async hook is on, every new promise gets its async id: none must be there now
  const left = Object.getOwnPropertySymbols(Promise.resolve())
  if (left.length > 0) {
    throw new Error(
      `bench: promise hooks still on after AsyncLocalStorage was turned off (${left.map(String)})`,
    )
  }
}

async function pgBossHarness(
  url: string,
  jobs: JobTenancy,
  c: Counter,
  unsigned?: JobTenancy,
): Promise<Harness> {
  const boss = new PgBoss({ connectionString: url, schema: 'pgboss', max: 8, schedule: false })
  boss.on('error', () => {})
  await boss.start()
  const tb = tenantPgBoss(boss, jobs)
  const tbu = unsigned && tenantPgBoss(boss, unsigned)
  // every side its own queue (bare-no-als too): a completed job stays in its queue's partition
  // until pg-boss archives it (hours later), so a queue two sides share would fetch through twice
  // the dead rows of the others by the last round
  const queueOf: Record<Side, string> = {
    bare: 'q_bare',
    'bare-no-als': 'q_bnal',
    wrapped: 'q_wrap',
    'wrapped-unsigned': 'q_unsg',
    'bare-again': 'q_bar2',
  }
  for (const q of Object.values(queueOf)) await boss.createQueue(q, { name: q })
  const work = { batchSize: BOSS_BATCH, pollingIntervalSeconds: 0.5 }
  const handle = async (_payload: unknown) => c.hit()
  /** Each queue's worker ids, so a round that has sent its last job wakes them (see `sent`). */
  const workers: Record<string, string[]> = Object.fromEntries(
    Object.values(queueOf).map((q) => [q, []]),
  )
  for (let w = 0; w < 4; w++) {
    for (const q of values.aa ? ['q_bare', 'q_bnal', 'q_bar2'] : ['q_bare', 'q_bnal']) {
      workers[q]!.push(
        // the app's per-job handler, called and awaited job by job as the wrapper does
        await boss.work(q, work, async (batch: { data: unknown }[]) => {
          for (const job of batch) await handle(job.data)
        }),
      )
    }
    workers.q_wrap!.push(await tb.work('q_wrap', work, handle))
    if (tbu) workers.q_unsg!.push(await tbu.work('q_unsg', work, handle))
  }
  return {
    name: 'pg-boss',
    anchor: `bare PgBoss send + work (4 workers, batches of ${BOSS_BATCH})`,
    n: BOSS_N,
    reps: REPS,
    unsignedSide: tbu !== undefined,
    aaSide: values.aa,
    send: (side, i) =>
      side === 'wrapped'
        ? tb.send('q_wrap', payloadOf(i))
        : side === 'wrapped-unsigned'
          ? tbu!.send('q_unsg', payloadOf(i))
          : boss.send(queueOf[side], bareOf(i)),
    // A worker sleeps out its polling interval (0.5 s) between fetches, so a round would end at
    // the first poll after its last send: up to 0.5 s on a round of ~3 s, by the poll's phase, not
    // by either side's cost (rounds read 1.00 or 0.85). Waking the side's workers once all is sent
    // ends every side's round when its jobs are done.
    sent: (side) => {
      for (const id of workers[queueOf[side]]!) boss.notifyWorker(id)
    },
    // A job's row is written three times (created, active, completed) and stays; without a
    // vacuum its dead versions pile up, and once a queue's partition outgrows shared_buffers its
    // rounds slow several-fold (this machine's PostgreSQL runs with autovacuum off): the
    // wrapper's partition, whose rows carry the envelope, got there first (rounds of 0.2-0.4 from
    // the 18th of 30). Vacuumed after every round, every side runs as with autovacuum keeping up.
    settle: async () => {
      await boss.getDb().executeSql('vacuum pgboss.job', [])
    },
    // graceful: with graceful: false pg-boss 10 closes its pool under its workers, which then
    // never report stopped, and its stop loop keeps the process alive
    close: () => boss.stop({ graceful: true, wait: true, timeout: 10_000 }),
  }
}

async function graphileHarness(url: string, jobs: JobTenancy, c: Counter): Promise<Harness> {
  const logger = new Logger(() => () => {})
  const utils = await makeWorkerUtils({ connectionString: url, logger })
  await utils.migrate()
  const addJob = tenantAddJob(utils, jobs)
  const runner = await runGraphile({
    connectionString: url,
    concurrency: 8,
    pollInterval: 200,
    noHandleSignals: true,
    logger,
    taskList: {
      q_bare: async () => c.hit(),
      ...tenantTaskList(jobs, { q_wrap: async () => c.hit() }),
    },
  })
  return {
    name: 'graphile-worker',
    anchor: 'bare WorkerUtils.addJob + runner task',
    n: N,
    reps: REPS,
    send: (side, i) =>
      side === 'wrapped' ? addJob('q_wrap', payloadOf(i)) : utils.addJob('q_bare', bareOf(i)),
    async close() {
      await runner.stop()
      await utils.release()
    },
  }
}

async function bullHarness(
  _url: string,
  jobs: JobTenancy,
  c: Counter,
  unsigned?: JobTenancy,
): Promise<Harness> {
  const redis = await openTestRedis()
  const clients: Redis[] = []
  const connection = () => {
    const r = new Redis({ host: redis.host, port: redis.port, maxRetriesPerRequest: null })
    clients.push(r)
    return r
  }
  const prefix = redis.prefix
  // Queue names of one length: BullMQ writes the name into every key of every command (some
  // 25 keys per job), so a longer name alone costs CPU in this process and in Redis.
  const bare = new Queue('q_bare', { connection: connection(), prefix })
  const wrappedQ = new Queue('q_wrap', { connection: connection(), prefix })
  const tq = tenantQueue(wrappedQ, jobs)
  const unsignedQ = new Queue('q_unsg', { connection: connection(), prefix })
  const tqu = unsigned && tenantQueue(unsignedQ, unsigned)
  const againQ = new Queue('q_bar2', { connection: connection(), prefix })
  const workers = [
    new Worker('q_bare', async () => c.hit(), { connection: connection(), prefix, concurrency: 8 }),
    new Worker(
      'q_wrap',
      tenantProcessor(jobs, 'q_wrap', async () => c.hit()),
      { connection: connection(), prefix, concurrency: 8 },
    ),
  ]
  if (values.aa) {
    workers.push(
      new Worker('q_bar2', async () => c.hit(), {
        connection: connection(),
        prefix,
        concurrency: 8,
      }),
    )
  }
  if (unsigned) {
    workers.push(
      new Worker(
        'q_unsg',
        tenantProcessor(unsigned, 'q_unsg', async () => c.hit()),
        { connection: connection(), prefix, concurrency: 8 },
      ),
    )
  }
  const clean = { removeOnComplete: true, removeOnFail: true }
  const info = connection()
  return {
    name: 'BullMQ',
    // Redis's own CPU (main thread and its helpers; the machine's Redis may serve others too)
    async serverCpu() {
      const text = await info.info('cpu')
      const seconds = (key: string) => Number(new RegExp(`${key}:([\\d.]+)`).exec(text)?.[1])
      return (seconds('used_cpu_user') + seconds('used_cpu_sys')) * 1e6
    },
    anchor: 'bare Queue.add + Worker',
    n: BULL_N,
    reps: BULL_REPS,
    unsignedSide: tqu !== undefined,
    aaSide: values.aa,
    send: (side, i) =>
      side === 'wrapped'
        ? tq.add('j', payloadOf(i), clean)
        : side === 'wrapped-unsigned'
          ? tqu!.add('j', payloadOf(i), clean)
          : (side === 'bare-again' ? againQ : bare).add('j', bareOf(i), clean),
    async close() {
      await Promise.all(workers.map((w) => w.close()))
      for (const q of [bare, wrappedQ, unsignedQ, againQ]) {
        await q.obliterate({ force: true }).catch(() => {})
        await q.close()
      }
      for (const r of clients) r.disconnect()
      await redis.stop()
    },
  }
}

/**
 * Rounds of n jobs per side: bare (AsyncLocalStorage on), wrapped, and bare with
 * AsyncLocalStorage off, in an order that rotates every round, so load drifts
 * hit all alike. Per side against each anchor: the median of the rounds'
 * throughput ratios and of their CPU-per-job ratios, and the median CPU per job.
 */
async function throughput(h: Harness, c: Counter) {
  const sides: Side[] = canTurnOff ? ['bare', 'wrapped', 'bare-no-als'] : ['bare', 'wrapped']
  if (h.unsignedSide) sides.push('wrapped-unsigned')
  if (h.aaSide) sides.push('bare-again')
  for (const side of sides) await round(h, c, side, Math.min(h.n, 500)) // warm-up
  const rounds: Record<Side, Awaited<ReturnType<typeof round>>[]> = {
    bare: [],
    wrapped: [],
    'bare-no-als': [],
    'wrapped-unsigned': [],
    'bare-again': [],
  }
  for (let r = 0; r < h.reps; r++) {
    const order = sides.map((_, i) => sides[(i + r) % sides.length]!)
    if (r % 2 === 1) order.reverse()
    for (const side of order) rounds[side].push(await round(h, c, side, h.n))
  }
  const cpuOf = (side: Side) => median(rounds[side].map((x) => x.cpuPerJob))
  console.log(`  ${h.name}: ${h.n} jobs x ${h.reps} rounds; anchor: ${h.anchor}, this process`)
  const line = (label: string, anchor: Side, subject: Side = 'wrapped') => {
    const a = rounds[anchor]
    const w = rounds[subject]
    const ratios = w.map((x, i) => a[i]!.ms / x.ms)
    const cpuRatios = w.map((x, i) => x.cpuPerJob / a[i]!.cpuPerJob)
    const ratio = median(ratios)
    const [low, high] = medianInterval(ratios)
    const rate = (xs: typeof a) => (h.n / (median(xs.map((x) => x.ms)) / 1000)).toFixed(0)
    const server = (side: Side) => median(rounds[side].map((x) => x.serverPerJob))
    const serverNote = h.serverCpu
      ? `; server CPU per job ${server(anchor).toFixed(1)} -> ${server(subject).toFixed(1)} µs ` +
        `(+${(server(subject) - server(anchor)).toFixed(1)}); process + server CPU per job, median round ratio ` +
        median(
          w.map((x, i) => (x.cpuPerJob + x.serverPerJob) / (a[i]!.cpuPerJob + a[i]!.serverPerJob)),
        ).toFixed(3)
      : ''
    console.log(
      `    vs ${label.padEnd(28)} ${rate(a).padStart(5)}/s -> ${rate(w).padStart(5)}/s, ratio ${ratio.toFixed(3)} ` +
        `(overhead ${((1 - ratio) * 100).toFixed(1)}%, 90% interval ${((1 - high) * 100).toFixed(1)} to ${((1 - low) * 100).toFixed(1)}%; rounds ${ratios.map((x) => x.toFixed(2)).join(' ')}); ` +
        `CPU per job ${cpuOf(anchor).toFixed(1)} -> ${cpuOf(subject).toFixed(1)} µs ` +
        `(+${(cpuOf(subject) - cpuOf(anchor)).toFixed(1)}; median round CPU ratio ${median(cpuRatios).toFixed(3)})` +
        serverNote,
    )
  }
  line('bare, AsyncLocalStorage on', 'bare')
  if (canTurnOff) line('bare, AsyncLocalStorage off', 'bare-no-als')
  else
    console.log(
      '    (no AsyncLocalStorage-off anchor: this Node has no AsyncLocalStorage _enable to track)',
    )
  if (h.unsignedSide) {
    console.log('  the same rounds, the wrapper without a secret (unsigned) as subject or anchor:')
    line('bare, AsyncLocalStorage on', 'bare', 'wrapped-unsigned')
    line('unsigned wrapper (signed ->)', 'wrapped-unsigned')
  }
  if (h.aaSide) {
    console.log('  the same rounds, the bare queue again on its own queue (noise floor):')
    line('bare, AsyncLocalStorage on', 'bare', 'bare-again')
  }
}

type Limit = false | 'fair' | 'queue'

/** A queue for the fairness run: `sendAs(tenant)` sends one job, `start` starts the workers. */
interface FairQueue {
  sendAs(tenant: string): Promise<unknown>
  start(): Promise<void>
  stop(): Promise<void>
}

type FairHandler = (
  payload: { sentAt: number },
  info: { tenantId: string | undefined },
) => Promise<void>

async function graphileFairQueue(
  url: string,
  jobs: JobTenancy,
  limit: Limit,
  handler: FairHandler,
) {
  const logger = new Logger(() => () => {})
  const utils = await makeWorkerUtils({ connectionString: url, logger })
  await utils.migrate()
  const addJob = tenantAddJob(
    utils,
    jobs,
    limit === 'queue' ? { tenantQueue: 2 } : { fair: limit === 'fair' },
  )
  let stop = async (): Promise<void> => {
    await utils.release()
  }
  return {
    sendAs: (t) => runWithTenant(t, () => addJob('fair', { sentAt: Date.now() })),
    async start() {
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
    },
    stop: () => stop(),
  } satisfies FairQueue
}

async function pgBossFairQueue(url: string, jobs: JobTenancy, limit: Limit, handler: FairHandler) {
  const boss = new PgBoss({ connectionString: url, schema: 'pgboss', max: 8, schedule: false })
  boss.on('error', () => {})
  await boss.start()
  await boss.deleteQueue('fair').catch(() => {})
  await boss.createQueue('fair', { name: 'fair' })
  const tb = tenantPgBoss(boss, jobs)
  return {
    sendAs: (t) =>
      runWithTenant(t, () => tb.send('fair', { sentAt: Date.now() }, { fair: limit === 'fair' })),
    async start() {
      for (let w = 0; w < 4; w++) {
        await tb.work('fair', { batchSize: 5, pollingIntervalSeconds: 0.5 }, handler)
      }
    },
    stop: () => boss.stop({ graceful: true, wait: true, timeout: 10_000 }),
  } satisfies FairQueue
}

/** B's waits (ms) when A sent A_JOBS first; `limit` switches the per-tenant limit on. */
async function fairness(
  adapter: 'graphile-worker' | 'pg-boss',
  url: string,
  store: TenantStore,
  limit: Limit,
) {
  const jobs = createJobTenancy({ store, queues: { fair: true } })
  const waits: Record<string, number[]> = { '1': [], '2': [] }
  let seen = 0
  let finish: () => void = () => {}
  const finished = new Promise<void>((r) => {
    finish = r
  })
  const handler: FairHandler = async (payload, info) => {
    waits[info.tenantId!]!.push(Date.now() - payload.sentAt)
    await new Promise((r) => setTimeout(r, 2))
    if (info.tenantId === '2' && ++seen === B_JOBS) finish()
  }
  const queue = await (adapter === 'graphile-worker' ? graphileFairQueue : pgBossFairQueue)(
    url,
    jobs,
    limit,
    handler,
  )
  // A's backlog is in the queue before the workers start; B sends once they run.
  await sendAll(A_JOBS, () => queue.sendAs('1'))
  const t0 = Date.now()
  await queue.start()
  await sendAll(B_JOBS, () => queue.sendAs('2'))
  await finished
  const total = Date.now() - t0
  const aDone = waits['1']!.length
  await queue.stop()
  return { bP95: p95(waits['2']!), aDone, total }
}

/** CPU time of the wrapper's own steps per job, without any queue (process CPU, not wall). */
async function wrapperCost(jobs: JobTenancy, store: TenantStore): Promise<void> {
  const payload = { invoiceId: 12, lines: [1, 2, 3], note: 'x'.repeat(64) }
  const sealed = TENANTS.map((t) =>
    JSON.parse(JSON.stringify(runWithTenant(t, () => jobs.seal('q_wrap', payload)))),
  )
  const steps: [string, (i: number) => unknown][] = [
    [
      'seal (envelope + sign)',
      (i) => runWithTenant(tenantOf(i), () => jobs.seal('q_wrap', payload)),
    ],
    ['admit (open + verify + cached tenant)', (i) => jobs.admit('q_wrap', sealed[i % 10], 'w')],
    ['  of which the cached tenant (store.peek)', (i) => store.peek(tenantOf(i))],
    [
      'process (admit + runWithTenant + handler)',
      (i) =>
        jobs.process(
          'q_wrap',
          sealed[i % 10],
          { id: 'w', attempt: 1 },
          () => 1,
          async () => {},
        ),
    ],
  ]
  console.log('\nwrapper CPU per job, no queue (process CPU, 20,000 calls after 2,000 warm-up):')
  for (const [label, step] of steps) {
    // a synchronous step is not awaited: an await costs more than some steps
    for (let i = 0; i < 2000; i++) {
      const r = step(i)
      if (r instanceof Promise) await r
    }
    const cpu0 = process.cpuUsage()
    for (let i = 0; i < 20_000; i++) {
      const r = step(i)
      if (r instanceof Promise) await r
    }
    const cpu = process.cpuUsage(cpu0)
    console.log(`  ${label.padEnd(42)} ${((cpu.user + cpu.system) / 20_000).toFixed(1)} µs`)
  }
}

/** With `--profile FILE`: a V8 CPU profile of `fn` written to FILE (open it in Chrome DevTools). */
async function profiled(fn: () => Promise<void>): Promise<void> {
  if (!values.profile) return fn()
  const session = new Session()
  session.connect()
  await session.post('Profiler.enable')
  await session.post('Profiler.start')
  try {
    await fn()
  } finally {
    const { profile } = await session.post('Profiler.stop')
    await writeFile(values.profile, JSON.stringify(profile))
    session.disconnect()
  }
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
      secret: values.unsigned ? undefined : 'bench-secret-0123456789abcdef',
      queues: { q_wrap: true },
    })
    /** The unsigned wrapper beside the signed one (`--vs-unsigned`, BullMQ). */
    const unsignedJobs =
      values['vs-unsigned'] && !values.unsigned
        ? createJobTenancy({ store, queues: { q_unsg: true } })
        : undefined
    const load = () =>
      loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')
    console.log(
      `rowtenancy/jobs bench (${quick ? 'quick' : 'full'}): ${N} jobs (pg-boss ${BOSS_N}, BullMQ ${BULL_N}) x ${REPS} rounds (BullMQ ${BULL_REPS}); ` +
        `server: ${scratch.embedded ? 'embedded PostgreSQL' : 'DATABASE_URL'}; loadavg ${load()} (shared machine)`,
    )
    if (PARTS.has('cpu')) await wrapperCost(jobs, store)
    if (PARTS.has('throughput')) {
      console.log(
        `\nthroughput, send + process (${values.unsigned ? 'unsigned' : 'signed'} jobs, cached tenant lookup); anchor: the bare queue in the same run`,
      )
      const harnesses = [
        ['pg-boss', pgBossHarness],
        ['graphile-worker', graphileHarness],
        ['BullMQ', bullHarness],
      ] as const
      for (const [name, make] of harnesses) {
        if (ADAPTERS && !ADAPTERS.includes(name)) continue
        const c = counter()
        const h = await make(scratch.url, jobs, c, unsignedJobs)
        try {
          await profiled(() => throughput(h, c))
        } finally {
          await h.close()
        }
      }
      console.log(`  loadavg after: ${load()}`)
    }
    if (PARTS.has('fairness')) {
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
      console.log(`  loadavg after: ${load()}`)
    }
  } finally {
    await admin.end()
    await scratch.close()
  }
}

await main()
