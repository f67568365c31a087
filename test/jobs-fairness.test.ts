import { Queue } from 'bullmq'
import { Logger, makeWorkerUtils, run } from 'graphile-worker'
import { Redis } from 'ioredis'
import PgBoss from 'pg-boss'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runWithTenant } from '../src/context/index.js'
import { InvalidInputError } from '../src/errors/index.js'
import {
  createJobTenancy,
  tenantAddJob,
  tenantPgBoss,
  tenantQueue,
  tenantTaskList,
} from '../src/jobs/index.js'
import { installTenantTables, TenantStore } from '../src/tenants/index.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'
import { openTestRedis } from './helpers/redis.js'
import { until } from './jobs-fixture.js'

let db: TestDatabase
let store: TenantStore

beforeAll(async () => {
  db = await createTestDatabase('jobs_fair')
  await installTenantTables(db.pool, { idType: 'bigint' })
  await db.pool.query(`insert into tenants (id, slug, name) values (1, 'a', 'A'), (2, 'b', 'B')`)
  store = new TenantStore({ db: db.pool })
})
afterAll(async () => {
  await db?.drop()
})

describe('fairness between tenants', () => {
  it('pg-boss fair send: a tenant with a backlog does not starve the next one (round-robin by priority)', async () => {
    const boss = new PgBoss({ connectionString: db.url, schema: 'pgboss', max: 3, schedule: false })
    boss.on('error', () => {})
    await boss.start()
    try {
      await boss.createQueue('fair', { name: 'fair' })
      const jobs = createJobTenancy({ store, queues: { fair: true } })
      const tb = tenantPgBoss(boss, jobs)
      for (let i = 0; i < 6; i++)
        await runWithTenant('1', () => tb.send('fair', { n: i }, { fair: true }))
      for (let i = 0; i < 2; i++)
        await runWithTenant('2', () => tb.send('fair', { n: i }, { fair: true }))
      const { rows } = await db.pool.query(
        `select data->'rowtenancy'->>'tenant' as t, priority from pgboss.job where name = 'fair' order by created_on, id`,
      )
      expect(rows.map((r) => `${r.t}:${r.priority}`)).toEqual([
        '1:0',
        '1:-1',
        '1:-2',
        '1:-3',
        '1:-4',
        '1:-5',
        '2:0',
        '2:-1',
      ])
      const order: string[] = []
      await tb.work('fair', { batchSize: 1, pollingIntervalSeconds: 0.5 }, async (_p, info) => {
        order.push(info.tenantId!)
      })
      await until(() => order.length === 8)
      // tenant 2's two jobs run second and fourth, not after tenant 1's six
      expect(order.slice(0, 4).filter((t) => t === '2')).toHaveLength(2)
    } finally {
      await boss.stop({ graceful: false, wait: true })
    }
  })

  it('graphile-worker tenantQueue: one named queue per tenant, so a tenant holds one worker slot at most', async () => {
    const logger = new Logger(() => () => {})
    const utils = await makeWorkerUtils({ connectionString: db.url, logger })
    await utils.migrate()
    const jobs = createJobTenancy({ store, queues: { slow: true } })
    const addJob = tenantAddJob(utils, jobs, { tenantQueue: true })
    for (let i = 0; i < 6; i++) await runWithTenant('1', () => addJob('slow', { n: i }))
    for (let i = 0; i < 2; i++) await runWithTenant('2', () => addJob('slow', { n: i }))
    const { rows } = await db.pool.query(
      'select distinct queue_name from graphile_worker.jobs order by queue_name',
    )
    expect(rows.map((r) => r.queue_name)).toEqual(['tenant:1', 'tenant:2'])
    const running = new Map<string, number>()
    const most = new Map<string, number>()
    const order: string[] = []
    const runner = await run({
      connectionString: db.url,
      concurrency: 4,
      pollInterval: 200,
      noHandleSignals: true,
      logger,
      taskList: tenantTaskList(jobs, {
        slow: async (_p, info) => {
          const t = info.tenantId!
          running.set(t, (running.get(t) ?? 0) + 1)
          most.set(t, Math.max(most.get(t) ?? 0, running.get(t)!))
          await new Promise((r) => setTimeout(r, 50))
          running.set(t, running.get(t)! - 1)
          order.push(t)
        },
      }),
    })
    try {
      await until(() => order.length === 8)
      expect(most.get('1')).toBe(1)
      expect(most.get('2')).toBe(1)
      expect(order.indexOf('2')).toBeLessThan(3)
    } finally {
      await runner.stop()
      await utils.release()
    }
  })

  it('graphile-worker tenantQueue: n spreads a tenant over n named queues: at most n of its jobs at once', async () => {
    const logger = new Logger(() => () => {})
    const utils = await makeWorkerUtils({ connectionString: db.url, logger })
    const jobs = createJobTenancy({ store, queues: { wide: true } })
    expect(() => tenantAddJob(utils, jobs, { tenantQueue: 0.5 })).toThrow(/tenantQueue must be/)
    const addJob = tenantAddJob(utils, jobs, { tenantQueue: 2 })
    for (let i = 0; i < 12; i++)
      await runWithTenant('1', () => addJob('wide', { n: i }, { queueName: 'w' }))
    const { rows } = await db.pool.query(
      `select distinct queue_name from graphile_worker.jobs where task_identifier = 'wide' order by 1`,
    )
    expect(rows.map((r) => r.queue_name)).toEqual(['w:1:0', 'w:1:1'])
    let running = 0
    let most = 0
    let done = 0
    const runner = await run({
      connectionString: db.url,
      concurrency: 6,
      pollInterval: 200,
      noHandleSignals: true,
      logger,
      taskList: tenantTaskList(jobs, {
        wide: async () => {
          most = Math.max(most, ++running)
          await new Promise((r) => setTimeout(r, 40))
          running--
          done++
        },
      }),
    })
    try {
      await until(() => done === 12)
      expect(most).toBeLessThanOrEqual(2)
    } finally {
      await runner.stop()
      await utils.release()
    }
  })

  it("graphile-worker fair: priority grows with the tenant's waiting jobs, so tenants alternate", async () => {
    const logger = new Logger(() => () => {})
    const utils = await makeWorkerUtils({ connectionString: db.url, logger })
    try {
      const jobs = createJobTenancy({ store, queues: { turn: true } })
      expect(() => tenantAddJob({ addJob: utils.addJob }, jobs, { fair: true })).toThrow(
        /withPgClient/,
      )
      const addJob = tenantAddJob(utils, jobs, { fair: true })
      for (let i = 0; i < 4; i++) await runWithTenant('1', () => addJob('turn', { n: i }))
      for (let i = 0; i < 2; i++) await runWithTenant('2', () => addJob('turn', { n: i }))
      const { rows } = await db.pool.query(
        `select payload->'rowtenancy'->>'tenant' as t, priority from graphile_worker._private_jobs j
           join graphile_worker._private_tasks k on k.id = j.task_id where k.identifier = 'turn' order by j.id`,
      )
      expect(rows.map((r) => `${r.t}:${r.priority}`)).toEqual([
        '1:0',
        '1:1',
        '1:2',
        '1:3',
        '2:0',
        '2:1',
      ])
    } finally {
      await utils.release()
    }
  })
})

// The queues keep one job per key (and pg-boss one schedule per queue) across every tenant: a key
// one tenant chose must not replace another tenant's job, nor make the queue drop it.
describe('job keys are per tenant', () => {
  it("graphile-worker: a jobKey another tenant used does not replace that tenant's job", async () => {
    const logger = new Logger(() => () => {})
    const utils = await makeWorkerUtils({ connectionString: db.url, logger })
    await utils.migrate()
    try {
      const jobs = createJobTenancy({ store, queues: { keyed: true } })
      const addJob = tenantAddJob(utils, jobs, { tenantQueue: true })
      await runWithTenant('1', () => addJob('keyed', { n: 1 }, { jobKey: 'daily' }))
      await runWithTenant('2', () => addJob('keyed', { n: 2 }, { jobKey: 'daily' }))
      // the same tenant's key still replaces its own job
      await runWithTenant('2', () => addJob('keyed', { n: 3 }, { jobKey: 'daily' }))
      await expect(
        runWithTenant('1', () => addJob('keyed', { n: 4 }, { jobKey: 7 as never })),
      ).rejects.toThrow(/jobKey must be a string/)
      const { rows } = await db.pool.query(
        `select payload->'rowtenancy'->>'tenant' as t, payload->'payload'->>'n' as n, key, q.queue_name
           from graphile_worker._private_jobs j join graphile_worker._private_tasks k on k.id = j.task_id
           left join graphile_worker._private_job_queues q on q.id = j.job_queue_id
           where k.identifier = 'keyed' order by 1`,
      )
      expect(rows).toEqual([
        { t: '1', n: '1', key: '1/daily', queue_name: 'tenant:1' },
        { t: '2', n: '3', key: '2/daily', queue_name: 'tenant:2' },
      ])
    } finally {
      await utils.release()
    }
  })

  it("pg-boss: a short queue's or a singletonKey's one job is one per tenant; a schedule is not taken over", async () => {
    const boss = new PgBoss({ connectionString: db.url, schema: 'pgboss', max: 3, schedule: false })
    boss.on('error', () => {})
    await boss.start()
    try {
      await boss.createQueue('one-each', { name: 'one-each', policy: 'short' })
      await boss.createQueue('digest', { name: 'digest' })
      const jobs = createJobTenancy({ store, queues: { 'one-each': true, digest: true } })
      const tb = tenantPgBoss(boss, jobs)
      const sent = [
        await runWithTenant('1', () => tb.send('one-each', { n: 1 })),
        await runWithTenant('2', () => tb.send('one-each', { n: 2 })),
        await runWithTenant('1', () => tb.send('one-each', { n: 3 })),
        await runWithTenant('1', () =>
          tb.send('digest', { n: 4 }, { singletonKey: 'k', singletonSeconds: 60 }),
        ),
        await runWithTenant('2', () =>
          tb.send('digest', { n: 5 }, { singletonKey: 'k', singletonSeconds: 60 }),
        ),
      ]
      // the short queue keeps one queued job per tenant: tenant 1's second is dropped, tenant 2's is not
      expect(sent.map((id) => id !== null)).toEqual([true, true, false, true, true])

      await runWithTenant('1', () => tb.schedule('digest', '0 7 * * *', { n: 6 }))
      await runWithTenant('1', () => tb.schedule('digest', '0 8 * * *', { n: 7 }))
      await expect(
        runWithTenant('2', () => tb.schedule('digest', '0 9 * * *', { n: 8 })),
      ).rejects.toThrow(InvalidInputError)
      const { rows } = await db.pool.query(
        `select cron, data->'rowtenancy'->>'tenant' as t, options->>'singletonKey' as key from pgboss.schedule`,
      )
      expect(rows).toEqual([{ cron: '0 8 * * *', t: '1', key: '1/' }])
    } finally {
      await boss.stop({ graceful: false, wait: true })
    }
  })

  it('BullMQ: a jobId, a deduplication id or a job scheduler id another tenant used does not drop or replace its job', async () => {
    const redis = await openTestRedis()
    const connection = new Redis({ host: redis.host, port: redis.port, maxRetriesPerRequest: null })
    const queue = new Queue('keyed', { connection, prefix: redis.prefix })
    try {
      const jobs = createJobTenancy({ store, queues: { keyed: true } })
      const q = tenantQueue(queue, jobs)
      for (const t of ['1', '2']) {
        await runWithTenant(t, () => q.add('a', { t }, { jobId: 'invoice-12', delay: 60_000 }))
        await runWithTenant(t, () =>
          q.add('b', { t }, { deduplication: { id: 'sync' }, delay: 60_000 }),
        )
        await runWithTenant(t, () =>
          q.upsertJobScheduler('digest', { pattern: '0 7 * * *' }, { name: 'digest', data: { t } }),
        )
      }
      // a repeat in add would be keyed without the tenant (BullMQ 5) or dropped (BullMQ 6)
      await expect(
        runWithTenant('1', () => q.add('r', {}, { repeat: { pattern: '0 7 * * *' } })),
      ).rejects.toThrow(/upsertJobScheduler/)
      const byName = (name: string, list: { name: string; data: any }[]) =>
        list
          .filter((j) => j.name === name)
          .map((j) => j.data.rowtenancy.tenant as string)
          .sort()
      const delayed = await queue.getDelayed()
      expect(byName('a', delayed)).toEqual(['1', '2'])
      expect(byName('b', delayed)).toEqual(['1', '2'])
      expect((await queue.getJobSchedulers()).map((s) => s.key).sort()).toEqual([
        '1/digest',
        '2/digest',
      ])
      expect(byName('digest', delayed)).toEqual(['1', '2'])
    } finally {
      await queue.obliterate({ force: true }).catch(() => {})
      await queue.close()
      connection.disconnect()
      await redis.stop()
    }
  })
})
