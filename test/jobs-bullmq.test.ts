import { FlowProducer, Job, Queue, Worker } from 'bullmq'
import { Redis } from 'ioredis'
import { describe, expect, it } from 'vitest'
import { runWithTenant } from '../src/context/index.js'
import {
  JobRejectedError,
  tenantFlowProducer,
  tenantProcessor,
  tenantQueue,
} from '../src/jobs/index.js'
import { openBullPair, openTestRedis } from './helpers/redis.js'
import { SUSPENDED, setupJobsFixture, until } from './jobs-fixture.js'
import { jobScenarios } from './jobs-scenario.js'

/**
 * The job once it is in the failed set, read after that: a copy read before the failure has no
 * `failedReason` yet, and a failed attempt that will be retried leaves one too.
 */
async function failedJob(queue: Queue, id: string): Promise<Job | undefined> {
  if ((await (await Job.fromId(queue, id))?.getState()) !== 'failed') return undefined
  return Job.fromId(queue, id)
}

jobScenarios('BullMQ', async (fx) => {
  const redis = await openTestRedis()
  const clients: Redis[] = []
  const client = () => {
    const c = new Redis({ host: redis.host, port: redis.port, maxRetriesPerRequest: null })
    clients.push(c)
    return c
  }
  const jobs = fx.jobs()
  const names = ['probe', 'hold', 'global']
  const queues = new Map(
    names.map((n) => [n, new Queue(n, { connection: client(), prefix: redis.prefix })]),
  )
  const wrapped = new Map(names.map((n) => [n, tenantQueue(queues.get(n)!, jobs)]))
  const workers = names.map(
    (n) =>
      new Worker(n, tenantProcessor(jobs, n, fx.handlers[n]!), {
        connection: client(),
        prefix: redis.prefix,
        concurrency: 8,
      }),
  )
  for (const w of workers) w.on('error', () => {})
  await Promise.all(workers.map((w) => w.waitUntilReady()))
  return {
    async send(queue, payload, options = {}) {
      const q =
        wrapped.get(queue) ??
        tenantQueue(new Queue(queue, { connection: client(), prefix: redis.prefix }), jobs)
      const job = await q.add('job', payload, {
        attempts: options.attempts ?? 1,
        ...(options.delayMs ? { delay: options.delayMs } : {}),
      })
      return String(job.id)
    },
    async promote(queue, id) {
      await (await Job.fromId(queues.get(queue)!, id))!.promote()
    },
    async sendRaw(queue, data) {
      return String((await queues.get(queue)!.add('job', data, { attempts: 1 })).id)
    },
    async outcome(queue, id) {
      const failed = await failedJob(queues.get(queue)!, id)
      if (failed) return { state: 'failed', error: failed.failedReason }
      const state = await (await Job.fromId(queues.get(queue)!, id))?.getState()
      if (state === 'completed') return { state: 'completed', error: '' }
      return undefined
    },
    async stop() {
      await Promise.all(workers.map((w) => w.close()))
      for (const q of queues.values()) {
        await q.obliterate({ force: true }).catch(() => {})
        await q.close()
      }
      for (const c of clients) c.disconnect()
      await redis.stop()
    },
  }
})

describe('BullMQ: scheduled runs', () => {
  it('every run of a job scheduler made in tenant 5 runs as tenant 5', async () => {
    const fx = await setupJobsFixture('bull_sched')
    const redis = await openTestRedis()
    const jobs = fx.jobs()
    const bull = openBullPair(redis, 'probe', tenantProcessor(jobs, 'probe', fx.handlers.probe!))
    const { queue } = bull
    try {
      await runWithTenant('5', () =>
        tenantQueue(queue, jobs).upsertJobScheduler(
          'tick',
          { every: 300, limit: 3 },
          { name: 'tick', data: { tag: 'tick', want: '5' } },
        ),
      )
      const runs = await until(() => {
        const t = fx.seen.filter((s) => s.tag === 'tick')
        return t.length >= 3 && t
      })
      for (const s of runs) expect(s).toMatchObject({ tenant: '5', bound: '5', accounts: ['t5'] })
    } finally {
      await bull.close()
      await redis.stop()
      await fx.cleanup()
    }
  })
})

describe('BullMQ: what a retry can cure', () => {
  it("a forged job fails at once whatever its attempts; a suspended tenant's job and a handler's error use them", async () => {
    const fx = await setupJobsFixture('bull_attempts')
    const redis = await openTestRedis()
    const jobs = fx.jobs()
    const bull = openBullPair(
      redis,
      'probe',
      tenantProcessor(jobs, 'probe', (payload: { tag: string }) => {
        // a refusal the handler itself meets is the handler's error, not the job's refusal
        if (payload.tag === 'inner') throw new JobRejectedError('unknown-queue', 'from the handler')
      }),
    )
    const { queue } = bull
    bull.worker.on('error', () => {})
    const failed = (id: string) => failedJob(queue, id)
    try {
      const forged = await queue.add(
        'job',
        { rowtenancy: { v: 1, tenant: '1', sig: 'A'.repeat(43) }, payload: { tag: 'forged' } },
        { attempts: 3 },
      )
      const tq = tenantQueue(queue, jobs)
      const sleepy = await runWithTenant(SUSPENDED, () =>
        tq.add('job', { tag: 'sleepy' }, { attempts: 2 }),
      )
      const inner = await runWithTenant('1', () => tq.add('job', { tag: 'inner' }, { attempts: 2 }))
      const f = (await until(() => failed(forged.id!)))!
      expect(f.failedReason).toMatch(/^\[JOB_REJECTED:bad-signature\] .*signature is wrong/)
      expect(f.attemptsMade).toBe(1)
      const s = (await until(() => failed(sleepy.id!)))!
      expect(s.failedReason).toMatch(/"sleepy" \(20\) is suspended/)
      expect(s.attemptsMade).toBe(2)
      const i = (await until(() => failed(inner.id!)))!
      expect(i.failedReason).toBe('from the handler')
      expect(i.attemptsMade).toBe(2)
    } finally {
      await bull.close()
      await redis.stop()
      await fx.cleanup()
    }
  })
})

describe('BullMQ: the job name is signed', () => {
  it('a job whose name was changed or removed in Redis is refused; its twins and addBulk run; a scheduler run is named by the id', async () => {
    const fx = await setupJobsFixture('bull_name')
    const redis = await openTestRedis()
    const jobs = fx.jobs()
    const ran: string[] = []
    const bull = openBullPair(
      redis,
      'probe',
      tenantProcessor(jobs, 'probe', (payload: { tag: string }, _info, job) => {
        ran.push(`${payload.tag}:${job.name}`)
      }),
    )
    const { queue } = bull
    bull.worker.on('error', () => {})
    try {
      const tq = tenantQueue(queue, jobs)
      // delayed past the test, so none runs before Redis is changed under it; promoted after
      const [renamed, unnamed, kept] = await runWithTenant('1', () =>
        Promise.all([
          tq.add('invoice', { tag: 'renamed' }, { delay: 600_000 }),
          tq.add('invoice', { tag: 'unnamed' }, { delay: 600_000 }),
          tq.add('invoice', { tag: 'kept' }, { delay: 600_000 }),
        ]),
      )
      await runWithTenant('1', () =>
        tq.addBulk([
          { name: 'bulk', data: { tag: 'b1' } },
          { name: 'bulk', data: { tag: 'b2' }, opts: { attempts: 2 } },
        ]),
      )
      // what a script or an injection with Redis access can do to a queued job
      const raw = new Redis({ host: redis.host, port: redis.port })
      await raw.hset(queue.toKey(renamed.id!), 'name', 'refund')
      await raw.hdel(queue.toKey(unnamed.id!), 'name')
      raw.disconnect()
      for (const job of [renamed, unnamed, kept]) await job.promote()
      await runWithTenant('1', () =>
        tq.upsertJobScheduler('digest', { every: 200, limit: 1 }, { data: { tag: 'digest' } }),
      )
      const failed = await until(() => failedJob(queue, renamed.id!))
      expect(failed.failedReason).toMatch(/bad-signature/)
      const noName = await until(() => failedJob(queue, unnamed.id!))
      expect(noName.failedReason).toMatch(/malformed.*has no name/)
      await until(() => ran.length >= 4)
      expect(ran.sort()).toEqual(['b1:bulk', 'b2:bulk', 'digest:digest', 'kept:invoice'])
      expect((await Job.fromId(queue, kept.id!))?.name).toBe('invoice')
    } finally {
      await bull.close()
      await redis.stop()
      await fx.cleanup()
    }
  })
})

describe('BullMQ: flows', () => {
  it('every job of a flow runs as the tenant that added it, the parent after its children; a flow outside a tenant or naming an undeclared queue adds nothing', async () => {
    const fx = await setupJobsFixture('bull_flow')
    const redis = await openTestRedis()
    const jobs = fx.jobs()
    const bull = openBullPair(redis, 'probe', tenantProcessor(jobs, 'probe', fx.handlers.probe!))
    bull.worker.on('error', () => {})
    const connection = new Redis({ host: redis.host, port: redis.port, maxRetriesPerRequest: null })
    const producer = new FlowProducer({ connection, prefix: redis.prefix })
    const flows = tenantFlowProducer(producer, jobs)
    try {
      const leaf = (tag: string, opts?: Record<string, unknown>) => ({
        name: 'sum',
        queueName: 'probe',
        data: { tag, want: '3' },
        ...(opts ? { opts } : {}),
      })
      const tree = {
        name: 'close',
        queueName: 'probe',
        data: { tag: 'flow-parent', want: '3' },
        children: [
          leaf('flow-a', { jobId: 'a' }),
          { ...leaf('flow-b'), children: [leaf('flow-b1')] },
        ],
      }
      await expect(flows.add(tree)).rejects.toThrow(/tenant/i)
      await expect(
        runWithTenant('3', () =>
          flows.add({ ...tree, children: [...tree.children, { name: 'x', queueName: 'nowhere' }] }),
        ),
      ).rejects.toMatchObject({ reason: 'unknown-queue' })
      await expect(
        runWithTenant('3', () =>
          flows.add({ ...tree, children: [leaf('flow-r', { repeat: { every: 1000 } })] }),
        ),
      ).rejects.toThrow(/repeat/)
      expect(await bull.queue.getJobCountByTypes('waiting', 'waiting-children', 'delayed')).toBe(0)

      const node = await runWithTenant('3', () => flows.add(tree))
      expect(node.children.map((c: any) => c.job.id).sort()).toContain('3/a')
      const runs = await until(() => {
        const seen = fx.seen.filter((s) => s.tag.startsWith('flow-'))
        return seen.length >= 4 && seen
      })
      expect(runs.map((r) => r.tag).sort()).toEqual(['flow-a', 'flow-b', 'flow-b1', 'flow-parent'])
      for (const r of runs) expect(r).toMatchObject({ tenant: '3', bound: '3', accounts: ['t3'] })
      const at = (tag: string) => runs.find((r) => r.tag === tag)!.at
      expect(at('flow-parent')).toBeGreaterThanOrEqual(Math.max(at('flow-a'), at('flow-b')))
      expect(at('flow-b')).toBeGreaterThanOrEqual(at('flow-b1'))
    } finally {
      await producer.close()
      connection.disconnect()
      await bull.close()
      await redis.stop()
      await fx.cleanup()
    }
  })
})

describe('BullMQ: job options that name other jobs', () => {
  it("a job cannot be made a child of another tenant's job (parent id scoped); its own parent by key works; repeatJobKey is refused", async () => {
    const fx = await setupJobsFixture('bull_parent')
    const redis = await openTestRedis()
    const jobs = fx.jobs()
    const bull = openBullPair(redis, 'probe', tenantProcessor(jobs, 'probe', fx.handlers.probe!))
    bull.worker.on('error', () => {})
    const connection = new Redis({ host: redis.host, port: redis.port, maxRetriesPerRequest: null })
    const producer = new FlowProducer({ connection, prefix: redis.prefix })
    const { queue } = bull
    const tq = tenantQueue(queue, jobs)
    try {
      // tenant 1's flow: its parent waits for a child delayed well past the test
      await runWithTenant('1', () =>
        tenantFlowProducer(producer, jobs).add({
          name: 'close',
          queueName: 'probe',
          data: { tag: 'p1' },
          opts: { jobId: 'p' },
          children: [
            { name: 'sum', queueName: 'probe', data: { tag: 'late' }, opts: { delay: 60_000 } },
          ],
        }),
      )
      const parent = { queue: queue.qualifiedName }
      const into = (id: string) => ({ parent: { ...parent, id } })
      const dependencies = async () =>
        Object.keys((await (await Job.fromId(queue, '1/p'))!.getDependencies()).unprocessed ?? {})
          .length
      expect(await dependencies()).toBe(1)
      for (const id of ['1/p', 'p', '../1/p']) {
        await expect(
          runWithTenant('2', () => tq.add('evil', { tag: 'evil' }, into(id))),
        ).rejects.toThrow()
        // BullMQ's addBulk does not check that a parent exists: what counts is that 1/p gains none
        await runWithTenant('2', () =>
          tq.addBulk([{ name: 'evil', data: { tag: 'evil' }, opts: into(id) }]),
        ).catch(() => {})
      }
      expect(await dependencies()).toBe(1)
      await runWithTenant('1', () =>
        tq.add('more', { tag: 'own' }, { ...into('p'), delay: 60_000 }),
      )
      expect(await dependencies()).toBe(2)
      await expect(
        runWithTenant('2', () => tq.add('evil', { tag: 'evil' }, { repeatJobKey: 'x' })),
      ).rejects.toThrow(/repeatJobKey/)
    } finally {
      await producer.close()
      connection.disconnect()
      await bull.close()
      await redis.stop()
      await fx.cleanup()
    }
  })
})

describe('BullMQ: a job name that is not a string', () => {
  it('is refused when sent: BullMQ stores it as text, so the signature would be of another name and the job would fail unrun', async () => {
    const fx = await setupJobsFixture('bull_name_type')
    const redis = await openTestRedis()
    const jobs = fx.jobs()
    const ran: string[] = []
    const bull = openBullPair(
      redis,
      'probe',
      tenantProcessor(jobs, 'probe', (payload: { tag: string }) => {
        ran.push(payload.tag)
      }),
    )
    bull.worker.on('error', () => {})
    try {
      const tq = tenantQueue(bull.queue, jobs)
      const refused = /name must be a string/
      await expect(runWithTenant('1', () => tq.add(7 as never, { tag: 'n1' }))).rejects.toThrow(
        refused,
      )
      await expect(
        runWithTenant('1', () => tq.addBulk([{ name: 7 as never, data: { tag: 'n2' } }])),
      ).rejects.toThrow(refused)
      await expect(
        runWithTenant('1', () =>
          tq.upsertJobScheduler('n3', { every: 200, limit: 1 }, { name: 7 as never, data: {} }),
        ),
      ).rejects.toThrow(refused)
      expect(await bull.queue.getJobCounts('wait', 'delayed', 'failed', 'completed')).toEqual({
        wait: 0,
        delayed: 0,
        failed: 0,
        completed: 0,
      })
      expect(ran).toEqual([])
    } finally {
      await bull.close()
      await redis.stop()
      await fx.cleanup()
    }
  })
})
