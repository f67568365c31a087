import PgBoss from 'pg-boss'
import { describe, expect, it } from 'vitest'
import { runWithTenant } from '../src/context/index.js'
import { createJobTenancy, tenantPgBoss } from '../src/jobs/index.js'
import { TenantStore } from '../src/tenants/index.js'
import { SUSPENDED, setupJobsFixture, until } from './jobs-fixture.js'
import { jobScenarios } from './jobs-scenario.js'

jobScenarios('pg-boss', async (fx) => {
  const boss = new PgBoss({
    connectionString: fx.db.url,
    schema: 'pgboss',
    max: 6,
    schedule: false,
  })
  boss.on('error', () => {})
  await boss.start()
  const jobs = fx.jobs()
  const tenantBoss = tenantPgBoss(boss, jobs)
  for (const queue of ['probe', 'hold', 'global']) {
    await boss.createQueue(queue, { name: queue, retryLimit: 0 })
    for (let w = 0; w < 3; w++) {
      await tenantBoss.work(
        queue,
        { batchSize: 4, pollingIntervalSeconds: 0.5, includeMetadata: true },
        fx.handlers[queue]!,
      )
    }
  }
  return {
    async send(queue, payload, options = {}) {
      const id = await tenantBoss.send(queue, payload, {
        retryLimit: (options.attempts ?? 1) - 1,
        retryDelay: 0,
        ...(options.delayMs ? { startAfter: new Date(Date.now() + options.delayMs) } : {}),
      })
      return id!
    },
    async sendRaw(queue, data) {
      return (await boss.send(queue, data as object, { retryLimit: 0 }))!
    },
    async outcome(queue, id) {
      const job = await boss.getJobById(queue, id)
      if (job?.state === 'failed')
        return { state: 'failed', error: String((job.output as { message?: string })?.message) }
      if (job?.state === 'completed') return { state: 'completed', error: '' }
      return undefined
    },
    async stop() {
      await boss.stop({ graceful: false, wait: true })
    },
  }
})

describe('pg-boss: a refused job follows the queue rules', () => {
  it('is retried, then dead-lettered with its envelope intact (nothing lost)', async () => {
    const fx = await setupJobsFixture('pgboss_dlq')
    const boss = new PgBoss({
      connectionString: fx.db.url,
      schema: 'pgboss',
      max: 3,
      schedule: false,
    })
    boss.on('error', () => {})
    await boss.start()
    try {
      await boss.createQueue('probe_dlq', { name: 'probe_dlq' })
      await boss.createQueue('probe', {
        name: 'probe',
        retryLimit: 1,
        retryDelay: 0,
        deadLetter: 'probe_dlq',
      })
      const tb = tenantPgBoss(boss, fx.jobs())
      await tb.work('probe', { pollingIntervalSeconds: 0.5 }, fx.handlers.probe!)
      const forged = { rowtenancy: { v: 1, tenant: '2', sig: 'AAAA' }, payload: { tag: 'dlq' } }
      const id = (await boss.send('probe', forged))!
      const job = await until(async () => {
        const j = await boss.getJobById('probe', id)
        return j?.state === 'failed' && j
      })
      expect(job.retryCount).toBe(1)
      expect((job.output as { reason?: string }).reason).toBe('bad-signature')
      const [dead] = await until(async () => {
        const got = await boss.fetch('probe_dlq')
        return got.length > 0 && got
      })
      expect(dead!.data).toEqual(forged)
      expect(fx.seen).toEqual([])
    } finally {
      await boss.stop({ graceful: false, wait: true })
      await fx.cleanup()
    }
  })
})

describe('pg-boss: the wait policy', () => {
  it("a suspended tenant's job whose copy the queue refuses fails by the queue rules instead of completing", async () => {
    const fx = await setupJobsFixture('pgboss_wait_copy')
    const boss = new PgBoss({
      connectionString: fx.db.url,
      schema: 'pgboss',
      max: 3,
      schedule: false,
    })
    boss.on('error', () => {})
    await boss.start()
    // the first lookup waits until the test has queued a second job of the tenant
    let open!: () => void
    const gate = new Promise<void>((r) => {
      open = r
    })
    class GatedStore extends TenantStore {
      override async get(id: unknown) {
        await gate
        return super.get(id)
      }
    }
    try {
      // a short queue keeps one queued job per key: the first job's copy meets the second
      await boss.createQueue('hold', { name: 'hold', policy: 'short', retryLimit: 0 })
      const jobs = createJobTenancy({
        store: new GatedStore({ db: fx.db.pool, ttlMs: 0 }),
        queues: { hold: { suspended: 'wait' } },
        waitMs: 60_000,
      })
      const tb = tenantPgBoss(boss, jobs)
      const first = (await runWithTenant(SUSPENDED, () => tb.send('hold', { tag: 'first' })))!
      await tb.work(
        'hold',
        { pollingIntervalSeconds: 0.5, includeMetadata: true },
        fx.handlers.probe!,
      )
      await until(async () => (await boss.getJobById('hold', first))?.state === 'active')
      const second = await runWithTenant(SUSPENDED, () => tb.send('hold', { tag: 'second' }))
      expect(second).not.toBeNull()
      open()
      const job = await until(async () => {
        const j = await boss.getJobById('hold', first)
        return (j?.state === 'failed' || j?.state === 'completed') && j
      })
      // completed, it would be gone: its copy was never made
      expect(job.state).toBe('failed')
      expect(fx.seen).toEqual([])
    } finally {
      await boss.stop({ graceful: false, wait: true })
      await fx.cleanup()
    }
  })
})
