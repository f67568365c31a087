// Queue options that name other jobs, reached by a route the per-job scoping did not see.
import { FlowProducer, Job, Queue } from 'bullmq'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runWithTenant } from '../src/context/index.js'
import { createJobTenancy, tenantFlowProducer, tenantQueue } from '../src/jobs/index.js'
import { installTenantTables, TenantStore } from '../src/tenants/index.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'
import { openTestRedis, type TestRedis } from './helpers/redis.js'

let db: TestDatabase
let store: TenantStore
let redis: TestRedis

beforeAll(async () => {
  db = await createTestDatabase('jobs_opts')
  await installTenantTables(db.pool, { idType: 'bigint' })
  await db.pool.query(`insert into tenants (id, slug, name) values (1, 'a', 'A'), (2, 'b', 'B')`)
  store = new TenantStore({ db: db.pool })
  redis = await openTestRedis()
})
afterAll(async () => {
  await redis?.stop()
  await db?.drop()
})

/** A BullMQ queue and flow producer on the test Redis, under a prefix of their own. */
function openBull(name: string) {
  const connection = new Redis({ host: redis.host, port: redis.port, maxRetriesPerRequest: null })
  const prefix = `${redis.prefix}-${Math.random().toString(36).slice(2, 8)}`
  const queue = new Queue(name, { connection, prefix })
  const producer = new FlowProducer({ connection, prefix })
  return {
    queue,
    producer,
    async close() {
      await producer.close()
      await queue.obliterate({ force: true }).catch(() => {})
      await queue.close()
      connection.disconnect()
    },
  }
}

describe("BullMQ flows: the flow's queuesOptions", () => {
  it("a flow's default job options cannot name another tenant's job: its deduplication id is the tenant's own, repeatJobKey refused", async () => {
    const jobs = createJobTenancy({ store, queues: { probe: true } })
    const { queue, producer, close } = openBull('probe')
    try {
      const tq = tenantQueue(queue, jobs)
      const flows = tenantFlowProducer(producer, jobs)
      const victim = await runWithTenant('1', () =>
        tq.add('send', { n: 1 }, { delay: 60_000, deduplication: { id: 'sync', ttl: 60_000 } }),
      )
      const defaults = (defaultJobOptions: Record<string, unknown>) => ({
        queuesOptions: { probe: { defaultJobOptions } },
      })
      // tenant 2 names tenant 1's deduplication id (as stored) in the flow's defaults, to replace its job
      const evil = await runWithTenant('2', () =>
        flows.add(
          { name: 'evil', queueName: 'probe', data: { n: 2 } },
          defaults({
            delay: 60_000,
            attempts: 4,
            deduplication: { id: '1/sync', ttl: 60_000, replace: true, extend: true },
          }),
        ),
      )
      const kept = await Job.fromId(queue, String(victim.id))
      expect(kept?.data).toEqual({
        rowtenancy: expect.objectContaining({ tenant: '1' }),
        payload: { n: 1 },
      })
      // the defaults still apply to the flow's own jobs, its keys scoped as a job's own options are
      const own = await Job.fromId(queue, String(evil.job.id))
      expect(own?.opts).toMatchObject({ attempts: 4, deduplication: { id: '2/1/sync' } })
      await expect(
        runWithTenant('2', () =>
          flows.add(
            { name: 'evil', queueName: 'probe', data: {} },
            defaults({ repeatJobKey: '1/x' }),
          ),
        ),
      ).rejects.toThrow(/repeatJobKey/)
      await expect(
        runWithTenant('2', () =>
          flows.addBulk([
            { name: 'evil', queueName: 'probe', data: {}, opts: { repeatJobKey: 'x' } },
          ]),
        ),
      ).rejects.toThrow(/repeatJobKey/)
    } finally {
      await close()
    }
  })

  it("a queue whose default job options hold a key (one for every tenant's job) is refused when wrapped", async () => {
    const jobs = createJobTenancy({ store, queues: { probe: true } })
    const connection = new Redis({ host: redis.host, port: redis.port, maxRetriesPerRequest: null })
    const prefix = `${redis.prefix}-${Math.random().toString(36).slice(2, 8)}`
    const open = (defaultJobOptions: Record<string, unknown>) =>
      new Queue('probe', { connection, prefix, defaultJobOptions })
    const queues: Queue[] = []
    try {
      for (const key of [
        { jobId: 'daily' },
        { deduplication: { id: 'sync' } },
        { parent: { id: 'p', queue: 'bull:probe' } },
        { repeatJobKey: 'x' },
      ]) {
        const q = open(key)
        queues.push(q)
        expect(() => tenantQueue(q, jobs)).toThrow(
          new RegExp(`${Object.keys(key)[0]}.*defaultJobOptions`),
        )
      }
      const fine = open({ attempts: 3, removeOnComplete: true })
      queues.push(fine)
      const job = await runWithTenant('1', () =>
        tenantQueue(fine, jobs).add('a', {}, { delay: 60_000 }),
      )
      expect(job.opts.attempts).toBe(3)
    } finally {
      await queues[0]?.obliterate({ force: true }).catch(() => {})
      for (const q of queues) await q.close()
      connection.disconnect()
    }
  })
})
