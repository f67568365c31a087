import { Job, Queue, Worker } from 'bullmq'
import { Redis } from 'ioredis'
import { tenantProcessor, tenantQueue } from '../src/jobs/index.js'
import { openTestRedis } from './helpers/redis.js'
import { jobScenarios } from './jobs-scenario.js'

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
    async sendRaw(queue, data) {
      return String((await queues.get(queue)!.add('job', data, { attempts: 1 })).id)
    },
    async outcome(queue, id) {
      const job = await Job.fromId(queues.get(queue)!, id)
      const state = await job?.getState()
      if (state === 'failed') return { state: 'failed', error: job!.failedReason }
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
