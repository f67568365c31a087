import { Queue, Worker } from 'bullmq'
import { Logger, makeWorkerUtils, type Runner, run as runGraphile } from 'graphile-worker'
import { Redis } from 'ioredis'
import { sql } from 'kysely'
import pg from 'pg'
import PgBoss from 'pg-boss'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runWithTenant, tryCurrentTenant } from '../src/context/index.js'
import { createTenancy, type Tenancy, TenantStore } from '../src/entries/index.js'
import {
  createJobTenancy,
  type JobInfo,
  type PgBossLike,
  tenantAddJob,
  tenantPgBoss,
  tenantProcessor,
  tenantQueue,
  tenantTaskList,
} from '../src/jobs/index.js'
import { type EmbeddedServer, startEmbeddedPostgres } from './helpers/embedded-server.js'
import {
  faultSuperuser,
  faultSuperuserUrl,
  setupFaultDatabase,
  terminateFaultBackends,
} from './helpers/fault-suite.js'
import { openTestRedis, type TestRedis } from './helpers/redis.js'

/**
 * The fault suite's faults (terminate every backend, stop and restart, a lock
 * held, pg_sleep with a full pool) while workers of pg-boss, graphile-worker and
 * BullMQ run tenant jobs that read and write `notes` under RLS on a runtime role
 * (only the binding keeps tenants apart). pg-boss and graphile-worker keep their
 * queues on the same server, so the faults hit the queues too. Each job either
 * completes for its own tenant or fails with DATABASE_UNAVAILABLE and is retried
 * to completion after recovery; a ledger checks that no job saw or wrote another
 * tenant's rows, that every acknowledged job ran, and that its write is stored
 * under its tenant. The time from the end of each fault until every job sent
 * during it was done is printed (asserted only against a generous bound).
 */

const TENANTS = ['1', '2', '3', '4']
const ADAPTERS = ['pg-boss', 'graphile-worker', 'BullMQ'] as const
type Adapter = (typeof ADAPTERS)[number]
const QUEUE: Record<Adapter, string> = {
  'pg-boss': 'fault-boss',
  'graphile-worker': 'fault_graphile',
  BullMQ: 'fault-bull',
}
const DRAIN_BOUND_MS = 60_000

interface JobLedger {
  /** Jobs whose send resolved: key -> adapter. */
  readonly acked: Map<string, Adapter>
  /** Jobs whose handler finished: key -> runs that finished (at-least-once: may be > 1). */
  readonly done: Map<string, number>
  readonly violations: string[]
  /** Why jobs failed (to be retried): `adapter code/reason`. */
  readonly failures: Map<string, number>
  /** Sends refused while the database was down: `adapter code`. */
  readonly refusedSends: Map<string, number>
}

const bump = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1)
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

let server: EmbeddedServer
let pool: pg.Pool
let tenancy: Tenancy
let redis: TestRedis
const closers: (() => Promise<unknown>)[] = []
const send: Partial<Record<Adapter, (tenant: string, key: string) => Promise<unknown>>> = {}
const ledger: JobLedger = {
  acked: new Map(),
  done: new Map(),
  violations: [],
  failures: new Map(),
  refusedSends: new Map(),
}
const drains: Record<string, number> = {}
let seq = 0
let graphileRestarts = 0
/**
 * Rejections the queue libraries leave unhandled when the database drops at the moment they
 * write a job's outcome (pg-boss 10 does not await its complete/fail; graphile-worker 0.17 does
 * not retry a refused connection): counted and reported, since an app needs an
 * `unhandledRejection` handler for them. Any other unhandled rejection fails the run.
 */
const unhandled = { 'pg-boss': 0, 'graphile-worker': 0 }
const onUnhandled = (reason: unknown) => {
  const stack = String((reason as Error)?.stack ?? '')
  if (stack.includes('graphile-worker')) unhandled['graphile-worker']++
  else if (stack.includes('pg-boss')) unhandled['pg-boss']++
  else throw reason
}

/** Records a failed run: anything but DATABASE_UNAVAILABLE is a violation. */
function failed(adapter: Adapter, err: unknown): void {
  const e = err as { code?: string; reason?: string; message?: string }
  if (e?.code === 'DATABASE_UNAVAILABLE' || e?.code === 'DATABASE_UNREACHABLE') {
    bump(ledger.failures, `${adapter} ${e.reason ?? e.code}`)
  } else {
    ledger.violations.push(`${adapter}: a job failed with ${e?.code ?? ''} ${e?.message ?? err}`)
  }
}

/** The job every adapter runs: reads (raw SQL, so only RLS scopes it) and writes as its tenant. */
function handler(adapter: Adapter) {
  return async (payload: { key: string }, info: JobInfo) => {
    const tenant = info.tenantId!
    const where = `${adapter} job ${payload.key} as tenant ${tenant}`
    if (tryCurrentTenant() !== tenant || !payload.key.startsWith(`${tenant}-`)) {
      ledger.violations.push(`${where}: ran in context ${tryCurrentTenant()}`)
    }
    const { rows } = await sql<{
      tenant_id: string
      body: string
    }>`select tenant_id::text, body from notes`.execute(tenancy.kysely())
    for (const row of rows) {
      if (row.tenant_id !== tenant || !row.body.startsWith(`${tenant}-`)) {
        ledger.violations.push(`LEAK: ${where} saw ${row.tenant_id}/${row.body}`)
      }
    }
    const written = await tenancy.transaction((trx) =>
      trx
        .insertInto('notes' as never)
        .values({ body: payload.key } as never)
        .returning('tenant_id' as never)
        .executeTakeFirstOrThrow(),
    )
    if (String((written as { tenant_id: string }).tenant_id) !== tenant) {
      ledger.violations.push(`LEAK: ${where} wrote as ${JSON.stringify(written)}`)
    }
    bump(ledger.done, payload.key)
  }
}

async function startWorkers(url: string, store: TenantStore): Promise<void> {
  const jobs = createJobTenancy({
    store,
    secret: 'fault-job-secret-0123456789',
    queues: { [QUEUE['pg-boss']]: true, [QUEUE['graphile-worker']]: true, [QUEUE.BullMQ]: true },
  })

  // pg-boss: retried every second; a job whose completion was lost expires and runs again.
  const boss = new PgBoss({
    connectionString: url,
    max: 4,
    schedule: false,
    maintenanceIntervalSeconds: 1,
  })
  boss.on('error', () => {})
  await boss.start()
  closers.push(() => boss.stop({ graceful: false, wait: true }))
  await boss.createQueue(QUEUE['pg-boss'], {
    name: QUEUE['pg-boss'],
    retryLimit: 1000,
    retryDelay: 1,
    expireInSeconds: 5,
  })
  const recording: PgBossLike = {
    send: (...a) => boss.send(...a),
    schedule: (...a) => boss.schedule(...a),
    // The adapter writes each failed job through fail(), with the error's code and reason.
    fail: (name, id, data) => {
      failed('pg-boss', data)
      return boss.fail(name, id, data ?? {})
    },
    complete: (name, ids, data) => boss.complete(name, ids, data ?? {}),
    getDb: () => boss.getDb() as ReturnType<PgBossLike['getDb']>,
    work: (name, options, fn) =>
      boss.work(name, options, async (batch: any[]) => {
        try {
          return await fn(batch)
        } catch (err) {
          // The outcome could not be written even after the database answered again.
          failed('pg-boss', err)
          throw err
        }
      }),
  }
  const tb = tenantPgBoss(recording, jobs)
  for (let w = 0; w < 2; w++) {
    await tb.work(
      QUEUE['pg-boss'],
      { batchSize: 1, pollingIntervalSeconds: 0.5 },
      handler('pg-boss'),
    )
  }
  send['pg-boss'] = (tenant, key) => runWithTenant(tenant, () => tb.send(QUEUE['pg-boss'], { key }))

  // graphile-worker: its own retries (exponential backoff, 25 attempts).
  const logger = new Logger(() => () => {})
  const utils = await makeWorkerUtils({ connectionString: url, logger })
  await utils.migrate()
  const tasks = tenantTaskList(jobs, { [QUEUE['graphile-worker']]: handler('graphile-worker') })
  const task = tasks[QUEUE['graphile-worker']]!
  // graphile-worker 0.17 shuts its worker pool down when it cannot record a job's completion or
  // failure during an outage; like a process supervisor would, a new runner is started then.
  let closing = false
  let runner: Runner
  const startRunner = async (): Promise<void> => {
    runner = await runGraphile({
      connectionString: url,
      concurrency: 3,
      pollInterval: 200,
      noHandleSignals: true,
      logger,
      taskList: {
        [QUEUE['graphile-worker']]: async (payload, helpers) => {
          try {
            await task(payload, helpers)
          } catch (err) {
            failed('graphile-worker', err)
            throw err
          }
        },
      },
    })
    const ended = () => {
      if (closing) return
      graphileRestarts++
      const retry = () => startRunner().catch(() => setTimeout(retry, 500))
      setTimeout(retry, 200)
    }
    runner.promise.then(ended, ended)
  }
  await startRunner()
  closers.push(async () => {
    closing = true
    await runner.stop().catch(() => {})
    await utils.release()
  })
  const addJob = tenantAddJob(utils, jobs)
  send['graphile-worker'] = (tenant, key) =>
    runWithTenant(tenant, () => addJob(QUEUE['graphile-worker'], { key }))

  // BullMQ: the queue is in Redis (untouched by the faults); the job's database work is not.
  redis = await openTestRedis()
  const connection = () => {
    const r = new Redis({ host: redis.host, port: redis.port, maxRetriesPerRequest: null })
    closers.push(async () => r.disconnect())
    return r
  }
  const queue = new Queue(QUEUE.BullMQ, { connection: connection(), prefix: redis.prefix })
  const worker = new Worker(QUEUE.BullMQ, tenantProcessor(jobs, QUEUE.BullMQ, handler('BullMQ')), {
    connection: connection(),
    prefix: redis.prefix,
    concurrency: 3,
  })
  worker.on('failed', (_job, err) => failed('BullMQ', err))
  closers.push(async () => {
    await worker.close()
    await queue.obliterate({ force: true }).catch(() => {})
    await queue.close()
  })
  const tq = tenantQueue(queue, jobs)
  send.BullMQ = (tenant, key) =>
    runWithTenant(tenant, () =>
      tq.add(
        'j',
        { key },
        {
          attempts: 1000,
          backoff: { type: 'fixed', delay: 500 },
          removeOnComplete: true,
        },
      ),
    )
}

/** Sends one job per adapter round-robin over the tenants, every 40 ms, until stopped. */
function sender(): { stop: () => Promise<string[]> } {
  let running = true
  const keys: string[] = []
  const loop = (async () => {
    for (let i = 0; running; i++) {
      const tenant = TENANTS[i % TENANTS.length]!
      await Promise.all(
        ADAPTERS.map(async (adapter) => {
          const key = `${tenant}-${adapter}-${++seq}`
          try {
            await send[adapter]!(tenant, key)
            ledger.acked.set(key, adapter)
            keys.push(key)
          } catch (err) {
            // A send the database could not take is not acknowledged; it must say why.
            const code = (err as { code?: string }).code ?? (err as Error).message
            if (code === 'DATABASE_UNAVAILABLE') bump(ledger.refusedSends, `${adapter} ${code}`)
            else ledger.violations.push(`${adapter}: a send failed with ${code}`)
          }
        }),
      )
      await sleep(40)
    }
  })()
  return {
    async stop() {
      running = false
      await loop
      return keys
    },
  }
}

/** Waits until every acknowledged job is done; the ms since `since` and what is still pending. */
async function drained(since: number): Promise<{ ms: number; pending: string[] }> {
  for (;;) {
    const pending = [...ledger.acked.keys()].filter((k) => !ledger.done.has(k))
    if (pending.length === 0) return { ms: Date.now() - since, pending }
    if (Date.now() - since > DRAIN_BOUND_MS) return { ms: Number.POSITIVE_INFINITY, pending }
    await sleep(100)
  }
}

/** Nothing leaked, every failure was DATABASE_UNAVAILABLE, every acknowledged job's write is stored under its tenant. */
async function assertLedger(): Promise<void> {
  expect(ledger.violations, ledger.violations.slice(0, 5).join('; ')).toEqual([])
  const client = faultSuperuser(server.url)
  await client.connect()
  const { rows } = await client.query<{ tenant_id: string; body: string }>(
    'select tenant_id::text, body from notes',
  )
  await client.end()
  const stored = new Set(rows.map((r) => `${r.tenant_id}/${r.body}`))
  const lost = [...ledger.acked.keys()].filter((k) => !stored.has(`${k.split('-')[0]}/${k}`))
  expect(lost, lost.slice(0, 5).join('; ')).toEqual([])
}

/** Runs the sender through `fault`, then waits for every job to be done and checks the ledger. */
async function underFault(name: string, fault: () => Promise<void>): Promise<void> {
  const load = sender()
  await sleep(300)
  await fault()
  const end = Date.now()
  await sleep(300)
  const keys = await load.stop()
  const { ms, pending } = await drained(end)
  drains[name] = ms
  expect(ledger.violations, ledger.violations.slice(0, 5).join('; ')).toEqual([])
  expect(pending, pending.slice(0, 5).join('; ')).toEqual([])
  for (const adapter of ADAPTERS) {
    expect(keys.filter((k) => ledger.acked.get(k) === adapter).length).toBeGreaterThan(0)
  }
  await assertLedger()
}

beforeAll(async () => {
  process.on('unhandledRejection', onUnhandled)
  server = await startEmbeddedPostgres()
  const runtimeUrl = await setupFaultDatabase(server.url)
  pool = new pg.Pool({ connectionString: runtimeUrl, max: 6 })
  const store = new TenantStore({ db: pool, ttlMs: 300 })
  tenancy = createTenancy({
    pool,
    tables: ['notes'],
    binding: 'set_config',
    timeouts: { acquireMs: 1000, statementMs: 1500, lockMs: 500 },
  })
  await startWorkers(faultSuperuserUrl(server.url), store)
}, 120_000)

afterAll(async () => {
  console.info(
    `job faults: ms from the end of each fault until every job sent was done: ${JSON.stringify(drains)}; ` +
      `${ledger.acked.size} jobs acknowledged, ${[...ledger.done.values()].reduce((a, b) => a + b, 0)} runs finished; ` +
      `failed runs (retried): ${JSON.stringify(Object.fromEntries(ledger.failures))}; ` +
      `sends refused: ${JSON.stringify(Object.fromEntries(ledger.refusedSends))}; ` +
      `graphile-worker runner restarts ${graphileRestarts}; unhandled rejections left by the queues ${JSON.stringify(unhandled)}`,
  )
  process.off('unhandledRejection', onUnhandled)
  const bounded = (p: Promise<unknown>) => Promise.race([p.catch(() => {}), sleep(10_000)])
  for (const close of closers.reverse()) await bounded(close())
  await bounded(tenancy?.destroy() ?? Promise.resolve())
  await redis?.stop()
  await server?.stop()
}, 90_000)

describe('faults while pg-boss, graphile-worker and BullMQ workers run tenant jobs', () => {
  it('a healthy server: every job runs as its tenant', async () => {
    await underFault('healthy', async () => sleep(500))
  }, 90_000)

  it('terminate every backend, three times', async () => {
    await underFault('terminate', async () => {
      for (let i = 0; i < 3; i++) {
        await terminateFaultBackends(server.url)
        await sleep(300)
      }
    })
  }, 120_000)

  it('stop the server and start it again on the same data', async () => {
    await underFault('restart', async () => {
      await server.stop({ keep: true })
      await sleep(1000)
      server = await startEmbeddedPostgres({ dataDir: server.dataDir, port: server.port })
    })
  }, 120_000)

  it('a lock held on the table the jobs write', async () => {
    await underFault('lock', async () => {
      const holder = faultSuperuser(server.url)
      await holder.connect()
      await holder.query('begin')
      await holder.query('lock table notes in access exclusive mode')
      await sleep(2000)
      await holder.query('rollback')
      await holder.end()
    })
  }, 120_000)

  it('pg_sleep past statement_timeout with a full pool', async () => {
    await underFault('slow', async () => {
      // 12 sleepers for 6 runtime connections: jobs wait acquireMs, then fail and retry.
      await Promise.all(
        Array.from({ length: 12 }, (_, i) =>
          runWithTenant(TENANTS[i % 4]!, () =>
            sql`select pg_sleep(3)`.execute(tenancy.kysely()).catch(() => {}),
          ),
        ),
      )
    })
  }, 120_000)
})
