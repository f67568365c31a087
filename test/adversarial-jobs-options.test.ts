// Queue options that name other jobs, reached by a route the per-job scoping did not see.
import { FlowProducer, Job, Queue } from 'bullmq'
import { Logger, makeWorkerUtils, run } from 'graphile-worker'
import { Redis } from 'ioredis'
import PgBoss from 'pg-boss'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runWithTenant } from '../src/context/index.js'
import {
  createJobTenancy,
  tenantAddJob,
  tenantAddJobs,
  tenantCronItems,
  tenantFlowProducer,
  tenantPgBoss,
  tenantProcessor,
  tenantQueue,
  tenantTaskList,
} from '../src/jobs/index.js'
import { installTenantTables, TenantStore } from '../src/tenants/index.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'
import { openTestRedis, type TestRedis } from './helpers/redis.js'
import { until } from './jobs-fixture.js'

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

/**
 * Tenant 1's flow parent `1/<jobId>` waiting on one delayed child; returns how many children it
 * waits on (1 until another job is made its child).
 */
async function tenantOneParent(
  bull: ReturnType<typeof openBull>,
  jobs: ReturnType<typeof createJobTenancy>,
  jobId: string,
): Promise<() => Promise<number>> {
  await runWithTenant('1', () =>
    tenantFlowProducer(bull.producer, jobs).add({
      name: 'close',
      queueName: 'probe',
      data: {},
      opts: { jobId },
      children: [{ name: 'sum', queueName: 'probe', data: {}, opts: { delay: 60_000 } }],
    }),
  )
  return async () =>
    Object.keys(
      (await (await Job.fromId(bull.queue, `1/${jobId}`))!.getDependencies()).unprocessed ?? {},
    ).length
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

  it("a queue whose default job options hold a key (one for every tenant's job) is refused when wrapped and when sent", async () => {
    const jobs = createJobTenancy({ store, queues: { probe: true } })
    const connection = new Redis({ host: redis.host, port: redis.port, maxRetriesPerRequest: null })
    const prefix = `${redis.prefix}-${Math.random().toString(36).slice(2, 8)}`
    const open = (defaultJobOptions: Record<string, unknown>) =>
      new Queue('probe', { connection, prefix, defaultJobOptions })
    const queues: Queue[] = []
    try {
      for (const key of [
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
      // the defaults object the queue was opened with, changed after the wrap
      const later: Record<string, unknown> = { attempts: 1 }
      const changed = open(later)
      queues.push(changed)
      const wrapped = tenantQueue(changed, jobs)
      const before = await changed.count()
      later.deduplication = { id: 'sync' }
      await expect(runWithTenant('1', () => wrapped.add('a', {}))).rejects.toThrow(
        /deduplication.*defaultJobOptions/,
      )
      await expect(
        runWithTenant('1', () => wrapped.addBulk([{ name: 'a', data: {} }])),
      ).rejects.toThrow(/deduplication.*defaultJobOptions/)
      expect(await changed.count()).toBe(before)
    } finally {
      await queues[0]?.obliterate({ force: true }).catch(() => {})
      for (const q of queues) await q.close()
      connection.disconnect()
    }
  })
})

describe('BullMQ: a parent is named by its queue and id', () => {
  it("a parent's queue cannot carry the start of another tenant's job id (BullMQ joins queue and id with a colon)", async () => {
    const jobs = createJobTenancy({ store, queues: { probe: true } })
    const bull = openBull('probe')
    const { queue, producer, close } = bull
    try {
      // tenant 1's parent, its id of the three-part shape BullMQ allows colons in: 1/a:b:2/x
      const dependencies = await tenantOneParent(bull, jobs, 'a:b:2/x')
      expect(await dependencies()).toBe(1)
      // tenant 2's parent id is scoped to 2/x, but BullMQ's parent key is `${queue}:${id}`
      const into = { parent: { queue: `${queue.qualifiedName}:1/a:b`, id: 'x' } }
      const tq = tenantQueue(queue, jobs)
      await runWithTenant('2', () => tq.add('evil', {}, into)).catch(() => {})
      await runWithTenant('2', () =>
        tenantFlowProducer(producer, jobs).add({
          name: 'evil',
          queueName: 'probe',
          data: {},
          opts: into,
        }),
      ).catch(() => {})
      expect(await dependencies()).toBe(1)
      await expect(runWithTenant('2', () => tq.add('evil', {}, into))).rejects.toThrow(
        /parent\.queue/,
      )
    } finally {
      await close()
    }
  })
})

describe('BullMQ: key options of odd shapes', () => {
  it("a parent given as a function, or a key behind a getter that changes, cannot reach another tenant's job", async () => {
    const jobs = createJobTenancy({ store, queues: { probe: true } })
    const bull = openBull('probe')
    const { queue, producer, close } = bull
    try {
      const dependencies = await tenantOneParent(bull, jobs, 'secret')
      expect(await dependencies()).toBe(1)
      const tq = tenantQueue(queue, jobs)
      // BullMQ reads id and queue off a function as off an object
      const parent = Object.assign(() => {}, { id: '1/secret', queue: queue.qualifiedName })
      await expect(runWithTenant('2', () => tq.add('evil', {}, { parent }))).rejects.toThrow(
        /parent must be an object/,
      )
      await expect(
        runWithTenant('2', () => tq.addBulk([{ name: 'evil', data: {}, opts: { parent } }])),
      ).rejects.toThrow(/parent must be an object/)
      await expect(
        runWithTenant('2', () =>
          tenantFlowProducer(producer, jobs).add({
            name: 'evil',
            queueName: 'probe',
            data: {},
            opts: { parent },
          }),
        ),
      ).rejects.toThrow(/parent must be an object/)
      // a getter that shows no key when checked and tenant 1's parent when BullMQ reads it
      let reads = 0
      const flipping = {
        queue: queue.qualifiedName,
        get id() {
          reads += 1
          return reads === 1 ? 'mine' : '1/secret'
        },
      }
      const opts = {
        get jobId() {
          reads += 1
          return reads <= 2 ? undefined : '1/secret'
        },
        parent: flipping,
      }
      await runWithTenant('2', () => tq.add('evil', {}, opts)).catch(() => {})
      expect(await dependencies()).toBe(1)
      // a scheduler template whose opts show nothing when checked and tenant 1's parent after
      let templateReads = 0
      const template = {
        data: {},
        get opts() {
          templateReads += 1
          return templateReads === 2
            ? undefined
            : { parent: { id: '1/secret', queue: queue.qualifiedName } }
        },
      }
      await runWithTenant('2', () =>
        tq.upsertJobScheduler('evil', { every: 60_000 }, template),
      ).catch(() => {})
      // what BullMQ keeps for the scheduler's runs names no job of tenant 1's
      const kept = JSON.stringify(await queue.getJobScheduler('2/evil'))
      expect(kept).not.toContain('"1/secret"')
      expect(await dependencies()).toBe(1)
      expect(await (await Job.fromId(queue, '1/secret'))!.getState()).toBe('waiting-children')
    } finally {
      await close()
    }
  })
})

describe("a cross-tenant job's keys", () => {
  const crossJobs = () =>
    createJobTenancy({
      store,
      audit: { db: db.pool },
      queues: { probe: true, keyed: true, nightly: { crossTenant: 'nightly rollup' } },
    })

  it("graphile-worker: a cross-tenant job cannot take a tenant's jobKey (keys are global across tasks)", async () => {
    const utils = await makeWorkerUtils({
      connectionString: db.url,
      logger: new Logger(() => () => {}),
    })
    await utils.migrate()
    try {
      const jobs = crossJobs()
      const addJob = tenantAddJob(utils, jobs)
      const addJobs = tenantAddJobs(utils, jobs)
      await runWithTenant('1', () => addJob('keyed', { n: 1 }, { jobKey: 'daily' }))
      // code of tenant 2 (or any) sends a cross-tenant job keyed as tenant 1's job is stored
      for (const send of [
        () => addJob('nightly', { n: 2 }, { jobKey: '1/daily' }),
        () => addJobs([{ identifier: 'nightly', payload: { n: 2 }, jobKey: '1/daily' }]),
      ]) {
        await expect(runWithTenant('2', send)).rejects.toThrow(/jobKey.*tenant/)
      }
      expect(() =>
        tenantCronItems(jobs, [
          { task: 'nightly', match: '0 4 * * *', options: { jobKey: '1/daily' } },
        ]),
      ).toThrow(/jobKey/)
      const { rows } = await db.pool.query(
        `select k.identifier, j.payload->'rowtenancy'->>'tenant' as t, j.key
           from graphile_worker._private_jobs j join graphile_worker._private_tasks k on k.id = j.task_id
          where j.key = '1/daily'`,
      )
      expect(rows).toEqual([{ identifier: 'keyed', t: '1', key: '1/daily' }])
      // a cross-tenant key without a tenant's shape is kept as given
      await addJob('nightly', { n: 3 }, { jobKey: 'rollup:2026-11' })
    } finally {
      await utils.release()
    }
  })

  it("BullMQ: a cross-tenant job cannot be made a child of a tenant's job (its parent may be on another queue)", async () => {
    const jobs = crossJobs()
    const probe = openBull('probe')
    // the cross-tenant queue beside the tenant one, under the same prefix
    const nightly = new Queue('nightly', {
      connection: probe.queue.opts.connection as never,
      prefix: probe.queue.opts.prefix,
    })
    const nq = tenantQueue(nightly, jobs)
    try {
      const parent = await runWithTenant('1', () =>
        tenantFlowProducer(probe.producer, jobs).add({
          name: 'close',
          queueName: 'probe',
          data: {},
          opts: { jobId: 'p' },
          children: [{ name: 'sum', queueName: 'probe', data: {}, opts: { delay: 60_000 } }],
        }),
      )
      expect(parent.job.id).toBe('1/p')
      const dependencies = async () =>
        Object.keys(
          (await (await Job.fromId(probe.queue, '1/p'))!.getDependencies()).unprocessed ?? {},
        ).length
      const into = { parent: { id: '1/p', queue: probe.queue.qualifiedName } }
      await expect(runWithTenant('2', () => nq.add('evil', {}, into))).rejects.toThrow(
        /parent\.id.*tenant/,
      )
      await expect(nq.addBulk([{ name: 'evil', data: {}, opts: into }])).rejects.toThrow(
        /parent\.id/,
      )
      await expect(nq.add('evil', {}, { jobId: '1/p' })).rejects.toThrow(/jobId/)
      expect(await dependencies()).toBe(1)
    } finally {
      await nightly.obliterate({ force: true }).catch(() => {})
      await nightly.close()
      await probe.close()
    }
  })

  it("BullMQ: a cross-tenant job cannot be made a child of a tenant's job by the id BullMQ generated for it", async () => {
    const jobs = crossJobs()
    const probe = openBull('probe')
    const nightly = new Queue('nightly', {
      connection: probe.queue.opts.connection as never,
      prefix: probe.queue.opts.prefix,
    })
    const nq = tenantQueue(nightly, jobs)
    try {
      // tenant 1's job with no jobId: BullMQ numbers it, so its id has no tenant in it
      const mine = await runWithTenant('1', () =>
        tenantQueue(probe.queue, jobs).add('invoice', {}, { delay: 60_000 }),
      )
      expect(mine.id).toMatch(/^\d+$/)
      const into = { parent: { id: mine.id, queue: probe.queue.qualifiedName } }
      const flows = tenantFlowProducer(probe.producer, jobs)
      for (const send of [
        () => nq.add('evil', {}, into),
        () => nq.addBulk([{ name: 'evil', data: {}, opts: into }]),
        () => flows.add({ name: 'evil', queueName: 'nightly', data: {}, opts: into }),
      ]) {
        await expect(runWithTenant('2', send)).rejects.toThrow(/parent.*cross-tenant queue/)
      }
      const deps = await (await Job.fromId(probe.queue, mine.id!))!.getDependencies()
      expect(Object.keys(deps.unprocessed ?? {})).toEqual([])
      // a cross-tenant parent on a cross-tenant queue is the cross-tenant job's to name
      await nq.add('head', {}, { jobId: 'night-head', delay: 60_000 })
      await nq.add('part', {}, { parent: { id: 'night-head', queue: nightly.qualifiedName } })
    } finally {
      await nightly.obliterate({ force: true }).catch(() => {})
      await nightly.close()
      await probe.close()
    }
  })

  it("BullMQ: a tenant's flow cannot adopt an existing cross-tenant job as its child by naming its id", async () => {
    const jobs = crossJobs()
    const probe = openBull('probe')
    const nightly = new Queue('nightly', {
      connection: probe.queue.opts.connection as never,
      prefix: probe.queue.opts.prefix,
    })
    try {
      // the app's cross-tenant job (its result is every tenant's), waiting
      const rollup = await tenantQueue(nightly, jobs).add(
        'rollup',
        {},
        { jobId: 'rollup-2026-11', delay: 60_000 },
      )
      const flows = tenantFlowProducer(probe.producer, jobs)
      const child = (opts: Record<string, unknown>) => ({
        name: 'close',
        queueName: 'probe',
        data: {},
        opts: { jobId: 'mine' },
        children: [{ name: 'rollup', queueName: 'nightly', data: {}, opts }],
      })
      for (const opts of [
        { jobId: 'rollup-2026-11' },
        { deduplication: { id: 'rollup-2026-11' } },
      ]) {
        await expect(runWithTenant('2', () => flows.add(child(opts)))).rejects.toThrow(
          /cross-tenant job in a tenant's flow/,
        )
      }
      expect((await Job.fromId(nightly, rollup.id!))!.parentKey).toBeUndefined()
      expect(await Job.fromId(probe.queue, '2/mine')).toBeUndefined()
      // a cross-tenant child with no key of its own is a new job, the tenant's flow's
      await runWithTenant('2', () => flows.add(child({ delay: 60_000 })))
    } finally {
      await nightly.obliterate({ force: true }).catch(() => {})
      await nightly.close()
      await probe.close()
    }
  })

  it("pg-boss: a cross-tenant singletonKey of a tenant's shape is refused as the other keys are", async () => {
    const boss = new PgBoss({ connectionString: db.url, schema: 'pgboss', max: 2, schedule: false })
    boss.on('error', () => {})
    await boss.start()
    try {
      await boss.createQueue('nightly', { name: 'nightly' })
      const tb = tenantPgBoss(boss, crossJobs())
      await expect(tb.send('nightly', {}, { singletonKey: '1/k' })).rejects.toThrow(/singletonKey/)
      expect(await tb.send('nightly', {}, { singletonKey: 'k' })).not.toBeNull()
    } finally {
      await boss.stop({ graceful: false, wait: true })
    }
  })
})

describe('graphile-worker named queues', () => {
  it("a job of another tenant, or of none, never lands in a tenant's named queue (named queues are one per database)", async () => {
    const utils = await makeWorkerUtils({
      connectionString: db.url,
      logger: new Logger(() => () => {}),
    })
    await utils.migrate()
    try {
      const jobs = createJobTenancy({
        store,
        audit: { db: db.pool },
        queues: { lane: true, sweep: { crossTenant: 'sweep' } },
      })
      const plain = tenantAddJob(utils, jobs)
      const one = tenantAddJob(utils, jobs, { tenantQueue: true })
      const three = tenantAddJob(utils, jobs, { tenantQueue: 3 })
      const bulk = tenantAddJobs(utils, jobs, { tenantQueue: true })
      const later = { runAt: new Date(Date.now() + 3_600_000) }
      // tenant 1's own named queues: tenant:1, and tenant:1:0..2
      await runWithTenant('1', () => one('lane', { n: 1 }, later))
      for (let i = 0; i < 12; i++) await runWithTenant('1', () => three('lane', { n: 1 }, later))
      // tenant 2 (and a cross-tenant job) name tenant 1's queues
      const names = ['tenant:1', 'tenant:1:2', 'tenant', 'tenant:1:0']
      for (const queueName of names) {
        await runWithTenant('2', () => plain('lane', { n: 2 }, { ...later, queueName }))
        await runWithTenant('2', () => one('lane', { n: 2 }, { ...later, queueName }))
        await runWithTenant('2', () => three('lane', { n: 2 }, { ...later, queueName }))
        await runWithTenant('2', () =>
          bulk([{ identifier: 'lane', payload: { n: 2 }, ...later, queueName }]),
        )
        await plain('sweep', { n: 0 }, { ...later, queueName })
      }
      const items = await runWithTenant('2', () =>
        tenantCronItems(jobs, [
          { task: 'lane', match: '0 4 * * *', options: { queueName: 'tenant:1' } },
        ]),
      )
      expect((items[0]!.options as { queueName: string }).queueName).not.toBe('tenant:1')
      await expect(
        runWithTenant('2', () => plain('lane', {}, { queueName: 7 as never })),
      ).rejects.toThrow(/queueName must be a string/)
      const { rows } = await db.pool.query(
        `select distinct j.payload->'rowtenancy'->>'tenant' as t, q.queue_name
           from graphile_worker._private_jobs j
           join graphile_worker._private_job_queues q on q.id = j.job_queue_id`,
      )
      const ofTenant1 = (name: string) => /^tenant:1(:\d+)?$/.test(name)
      expect(rows.filter((r) => r.t === '1').every((r) => ofTenant1(r.queue_name))).toBe(true)
      expect(rows.filter((r) => r.t !== '1' && ofTenant1(r.queue_name))).toEqual([])
    } finally {
      await utils.release()
    }
  })
})

describe('pg-boss: a job id given by the sender', () => {
  it("a tenant job cannot choose its id (one per queue across tenants: it would drop another tenant's job of that id)", async () => {
    const boss = new PgBoss({ connectionString: db.url, schema: 'pgboss', max: 2, schedule: false })
    boss.on('error', () => {})
    await boss.start()
    try {
      await boss.createQueue('billing', { name: 'billing' })
      const tb = tenantPgBoss(boss, createJobTenancy({ store, queues: { billing: true } }))
      // an id derived from a business key both tenants have (invoice 12), tenant 2 first
      const id = '6f1c1e38-5b1e-4c4f-9a57-0c6f1a3e0c12'
      const sends: (() => Promise<unknown>)[] = [
        () => tb.send('billing', { invoice: 12 }, { id }),
        () => tb.insert([{ name: 'billing', data: { invoice: 12 }, id }]),
        () => tb.schedule('billing', '0 7 * * *', { invoice: 12 }, { id }),
      ]
      for (const send of sends) {
        await expect(runWithTenant('2', send)).rejects.toThrow(/\bid\b.*singletonKey/)
      }
      expect(await runWithTenant('1', () => tb.send('billing', { invoice: 12 }))).not.toBeNull()
      const { rows } = await db.pool.query(
        `select data->'rowtenancy'->>'tenant' as t from pgboss.job where name = 'billing'`,
      )
      expect(rows).toEqual([{ t: '1' }])
    } finally {
      await boss.stop({ graceful: false, wait: true })
    }
  })
})

describe("graphile-worker: a task's helpers", () => {
  it("helpers.addJob in a tenant's task seals the job as that tenant's, its jobKey the tenant's own", async () => {
    const logger = new Logger(() => () => {})
    const utils = await makeWorkerUtils({ connectionString: db.url, logger })
    await utils.migrate()
    const jobs = createJobTenancy({ store, queues: { spawn: true, child: true } })
    const later = { runAt: new Date(Date.now() + 3_600_000) }
    const done: string[] = []
    const runner = await run({
      connectionString: db.url,
      concurrency: 2,
      pollInterval: 100,
      noHandleSignals: true,
      logger,
      taskList: tenantTaskList(jobs, {
        spawn: async (_payload, info, helpers) => {
          // tenant 2's task names tenant 1's key as it is stored
          await helpers.addJob('child', { via: 'helpers' }, { ...later, jobKey: '1/daily' })
          await helpers.addJobs([{ identifier: 'child', payload: { via: 'addJobs' }, ...later }])
          await tenantAddJob(helpers, jobs)('child', { via: 'wrapped' }, later)
          done.push(info.tenantId!)
        },
        child: async () => {},
      }),
    })
    try {
      await runWithTenant('1', () =>
        tenantAddJob(utils, jobs)('child', { via: 'own' }, { ...later, jobKey: 'daily' }),
      )
      await runWithTenant('2', () => tenantAddJob(utils, jobs)('spawn', {}))
      await until(() => done.length === 1)
      const { rows } = await db.pool.query(
        `select j.payload, j.key from graphile_worker._private_jobs j
           join graphile_worker._private_tasks k on k.id = j.task_id
          where k.identifier = 'child' order by j.id`,
      )
      expect(rows).toEqual([
        { key: '1/daily', payload: { rowtenancy: { v: 1, tenant: '1' }, payload: { via: 'own' } } },
        {
          key: '2/1/daily',
          payload: { rowtenancy: { v: 1, tenant: '2' }, payload: { via: 'helpers' } },
        },
        { key: null, payload: { rowtenancy: { v: 1, tenant: '2' }, payload: { via: 'addJobs' } } },
        { key: null, payload: { rowtenancy: { v: 1, tenant: '2' }, payload: { via: 'wrapped' } } },
      ])
    } finally {
      await runner.stop()
      await utils.release()
    }
  })
})

describe('options of the wrong shape are refused, not read as no options', () => {
  it('a graphile-worker spec or BullMQ job options that are not an object, and a handler that is not a function', async () => {
    const jobs = createJobTenancy({ store, queues: { shaped: true } })
    const utils = await makeWorkerUtils({
      connectionString: db.url,
      logger: new Logger(() => () => {}),
    })
    await utils.migrate()
    const bull = openBull('shaped')
    try {
      const notObject = /must be an object/
      // a spec given as a string (a key meant as jobKey) would add a job with no key at all
      for (const spec of ['invoice-12', ['invoice-12'], 12]) {
        await expect(
          runWithTenant('1', () => tenantAddJob(utils, jobs)('shaped', {}, spec as never)),
        ).rejects.toThrow(notObject)
        await expect(
          runWithTenant('1', () => tenantQueue(bull.queue, jobs).add('x', {}, spec as never)),
        ).rejects.toThrow(notObject)
      }
      await expect(
        runWithTenant('1', () => tenantAddJobs(utils, jobs)(['shaped' as never])),
      ).rejects.toThrow(notObject)
      const { rows } = await db.pool.query(
        `select count(*)::int as n from graphile_worker._private_jobs j
           join graphile_worker._private_tasks k on k.id = j.task_id where k.identifier = 'shaped'`,
      )
      expect(rows[0].n).toBe(0)
      expect(await bull.queue.count()).toBe(0)
      expect(() => tenantTaskList(jobs, { shaped: 'handler' as never })).toThrow(/function/)
      expect(() => tenantProcessor(jobs, 'shaped', 'handler' as never)).toThrow(/function/)
    } finally {
      await bull.close()
      await utils.release()
    }
  })
})

describe('a list of jobs is read once, by index: its own map or iterator chooses nothing', () => {
  /** Tenant 1's job as a forger writes it: an envelope naming tenant 1, never sealed. */
  const forgedData = { rowtenancy: { v: 1, tenant: '1' }, payload: { forged: true } }
  /** `shown` as an array whose own `map` and iterator hand over `sent` instead. */
  function twoFaced<T>(shown: T[], sent: unknown[]): T[] {
    const list = [...shown]
    Object.defineProperty(list, 'map', { value: () => sent })
    Object.defineProperty(list, Symbol.iterator, { value: () => sent[Symbol.iterator]() })
    return list
  }
  const notList = { length: 1, 0: { name: 'x', data: {} }, map: () => [] }

  it("BullMQ addBulk, a flow's children and a flow producer's addBulk: the jobs sealed are the ones sent", async () => {
    const jobs = createJobTenancy({ store, queues: { listed: true } })
    const bull = openBull('listed')
    try {
      const tq = tenantQueue(bull.queue, jobs)
      const flows = tenantFlowProducer(bull.producer, jobs)
      const forged = { name: 'forged', data: forgedData }
      await runWithTenant('2', () =>
        tq.addBulk(twoFaced([{ name: 'bulk', data: { n: 1 } }], [forged])),
      )
      const leaf = { name: 'leaf', queueName: 'listed', data: {} }
      const forgedNode = { name: 'forged', queueName: 'listed', data: forgedData }
      await runWithTenant('2', () =>
        flows.add({
          name: 'parent',
          queueName: 'listed',
          data: {},
          children: twoFaced([leaf], [forgedNode]),
        }),
      )
      await runWithTenant('2', () =>
        flows.addBulk(twoFaced([{ ...leaf, name: 'bulk-flow' }], [forgedNode])),
      )
      // a node's fields read once: the queue it is sealed for is the one it is added to
      let reads = 0
      const flipping = {
        name: 'flip',
        data: {},
        get queueName() {
          reads += 1
          return reads === 1 ? 'listed' : 'elsewhere'
        },
      }
      await runWithTenant('2', () => flows.add(flipping))
      for (const send of [
        () => tq.addBulk(notList as never),
        () => flows.addBulk(notList as never),
        () => flows.add({ ...leaf, children: notList as never }),
      ]) {
        await expect(runWithTenant('2', send)).rejects.toThrow(/must be an array, not object/)
      }
      const stored = await bull.queue.getJobs(['waiting', 'waiting-children', 'delayed'])
      expect(stored.map((j) => j.name).sort()).toEqual([
        'bulk',
        'bulk-flow',
        'flip',
        'leaf',
        'parent',
      ])
      for (const job of stored) expect(job.data.rowtenancy.tenant).toBe('2')
    } finally {
      await bull.close()
    }
  })

  it('graphile-worker addJobs and tenantCronItems, pg-boss insert: the jobs sealed are the ones sent', async () => {
    const jobs = createJobTenancy({ store, queues: { listed_g: true, listed_b: true } })
    const utils = await makeWorkerUtils({
      connectionString: db.url,
      logger: new Logger(() => () => {}),
    })
    await utils.migrate()
    const boss = new PgBoss({ connectionString: db.url, schema: 'pgboss', max: 2, schedule: false })
    boss.on('error', () => {})
    await boss.start()
    try {
      await boss.createQueue('listed_b', { name: 'listed_b' })
      const forgedSpec = { identifier: 'listed_g', payload: forgedData }
      await runWithTenant('2', () =>
        tenantAddJobs(
          utils,
          jobs,
        )(twoFaced([{ identifier: 'listed_g', payload: { n: 1 } }], [forgedSpec])),
      )
      const tb = tenantPgBoss(boss, jobs)
      await runWithTenant('2', () =>
        tb.insert(
          twoFaced(
            [{ name: 'listed_b', data: { n: 1 } }],
            [{ name: 'listed_b', data: forgedData }],
          ),
        ),
      )
      for (const send of [
        () => tenantAddJobs(utils, jobs)(notList as never),
        () => tb.insert(notList as never),
      ]) {
        await expect(runWithTenant('2', send)).rejects.toThrow(/must be an array, not object/)
      }
      const graphile = await db.pool.query(
        `select j.payload->'rowtenancy'->>'tenant' as t, j.payload->'payload' as p from graphile_worker._private_jobs j
           join graphile_worker._private_tasks k on k.id = j.task_id where k.identifier = 'listed_g'`,
      )
      expect(graphile.rows).toEqual([{ t: '2', p: { n: 1 } }])
      const pgBoss = await db.pool.query(
        `select data->'rowtenancy'->>'tenant' as t, data->'payload' as p from pgboss.job where name = 'listed_b'`,
      )
      expect(pgBoss.rows).toEqual([{ t: '2', p: { n: 1 } }])

      // cron items: the list and each item's fields read once (options shown as none when
      // scoped, then tenant 1's key when kept, would keep that key unscoped)
      let reads = 0
      const item = {
        task: 'listed_g',
        match: '0 4 * * *',
        identifier: 'nightly',
        get options() {
          reads += 1
          return reads === 1 ? undefined : { jobKey: '1/secret' }
        },
      }
      const forgedItem = {
        task: 'listed_g',
        match: '0 4 * * *',
        identifier: 'x',
        payload: forgedData,
      }
      const out = runWithTenant('2', () => tenantCronItems(jobs, twoFaced([item], [forgedItem])))
      expect(out).toHaveLength(1)
      expect(out[0]!.identifier).toBe('nightly')
      expect((out[0]!.payload as { rowtenancy: { tenant: string } }).rowtenancy.tenant).toBe('2')
      expect(JSON.stringify(out)).not.toContain('1/secret')
      expect(() => tenantCronItems(jobs, notList as never)).toThrow(/must be an array, not object/)
      expect(() => tenantCronItems(jobs, [null as never])).toThrow(/cron item must be an object/)
      expect(() =>
        runWithTenant('2', () =>
          tenantCronItems(jobs, [{ task: 'listed_g', match: '* * * * *', options: 'k' as never }]),
        ),
      ).toThrow(/cron item's options must be an object, not string/)
    } finally {
      await boss.stop({ graceful: false, wait: true })
      await utils.release()
    }
  })
})
