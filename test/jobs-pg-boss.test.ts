import PgBoss from 'pg-boss'
import { describe, expect, it } from 'vitest'
import { runWithTenant } from '../src/context/index.js'
import { createJobTenancy, tenantPgBoss } from '../src/jobs/index.js'
import { TenantStore } from '../src/tenants/index.js'
import { type JobsFixture, SUSPENDED, setupJobsFixture, until } from './jobs-fixture.js'
import { jobScenarios } from './jobs-scenario.js'

/** pg-boss started on the fixture's database, without its scheduler. */
async function startBoss(fx: JobsFixture, max = 3): Promise<PgBoss> {
  const boss = new PgBoss({ connectionString: fx.db.url, schema: 'pgboss', max, schedule: false })
  boss.on('error', () => {})
  await boss.start()
  return boss
}

jobScenarios('pg-boss', async (fx) => {
  const boss = await startBoss(fx, 6)
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
    async promote(queue, id) {
      await fx.db.pool.query(
        'update pgboss.job set start_after = now() where name = $1 and id = $2',
        [queue, id],
      )
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
    const boss = await startBoss(fx)
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

describe('pg-boss: dead letters of signed jobs', () => {
  it('run on the dead-letter queue as their tenant when it declares deadLetterOf; else refused, kept', async () => {
    const fx = await setupJobsFixture('pgboss_dlq_run')
    const boss = await startBoss(fx)
    try {
      for (const dlq of ['dead_ok', 'dead_no']) await boss.createQueue(dlq, { name: dlq })
      for (const [q, dlq] of [
        ['first_ok', 'dead_ok'],
        ['first_no', 'dead_no'],
      ] as const) {
        await boss.createQueue(q, { name: q, retryLimit: 0, deadLetter: dlq })
      }
      const jobs = fx.jobs({
        queues: {
          first_ok: true,
          first_no: true,
          dead_ok: { deadLetterOf: 'first_ok' },
          dead_no: true,
        },
      })
      const tb = tenantPgBoss(boss, jobs)
      const fail = async () => {
        throw new Error('the first queue fails every job')
      }
      for (const q of ['first_ok', 'first_no'])
        await tb.work(q, { pollingIntervalSeconds: 0.5 }, fail)
      for (const q of ['dead_ok', 'dead_no']) {
        await tb.work(q, { pollingIntervalSeconds: 0.5 }, fx.handlers.probe!)
      }
      await runWithTenant('2', () => tb.send('first_ok', { tag: 'dead-ok' }))
      await runWithTenant('2', () => tb.send('first_no', { tag: 'dead-no' }))
      const [ran] = await until(() => fx.seen.length > 0 && fx.seen)
      expect(ran).toMatchObject({ queue: 'dead_ok', tag: 'dead-ok', tenant: '2', bound: '2' })
      // the dead_no copy is refused by its worker (bad signature) and kept, not run
      const dead = await until(async () => {
        const { rows } = await fx.db.pool.query(
          `select state, output->>'reason' as reason from pgboss.job where name = 'dead_no'`,
        )
        return rows[0]?.state === 'failed' && rows
      })
      expect(dead).toEqual([{ state: 'failed', reason: 'bad-signature' }])
      expect(fx.seen.map((s) => s.tag)).toEqual(['dead-ok'])
    } finally {
      await boss.stop({ graceful: false, wait: true })
      await fx.cleanup()
    }
  })

  it('deadLetterOf must name another declared queue of the same kind', async () => {
    const fx = await setupJobsFixture('pgboss_dlq_config')
    try {
      for (const [queues, message] of [
        [{ a: { deadLetterOf: 'missing' } }, /not another declared queue/],
        [{ a: { deadLetterOf: 'a' } }, /not another declared queue/],
        [{ a: true, b: { deadLetterOf: ['a', 7] } }, /not another declared queue/],
        [{ a: true, g: { crossTenant: 'dead letters', deadLetterOf: 'a' } }, /both must be tenant/],
      ] as const) {
        expect(() => fx.jobs({ queues: queues as never })).toThrow(message)
      }
    } finally {
      await fx.cleanup()
    }
  })
})

describe("pg-boss: a batch's outcomes", () => {
  it('each job of a batch ends with its own outcome and output, written once', async () => {
    const fx = await setupJobsFixture('pgboss_batch_outcomes')
    const boss = await startBoss(fx)
    try {
      for (const q of ['mixed', 'alike', 'apart']) {
        await boss.createQueue(q, { name: q, retryLimit: 0 })
      }
      const jobs = fx.jobs({ queues: { mixed: true, alike: true, apart: true } })
      const tb = tenantPgBoss(boss, jobs)
      const ids: Record<string, string> = {}
      for (const [q, tags] of [
        ['mixed', ['ok1', 'boom', 'ok2', 'boom']],
        ['alike', ['boom', 'boom']],
        ['apart', ['boom', 'bang', 'ok']],
      ] as const) {
        for (const [i, tag] of tags.entries()) {
          ids[`${q}${i}`] = (await runWithTenant('2', () => tb.send(q, { tag })))!
        }
      }
      // a job with no envelope in a batch of good ones: refused alone
      ids.raw = (await boss.send('mixed', { tag: 'raw' }))!
      const handler = async (payload: { tag: string }) => {
        if (payload.tag === 'ok1' || payload.tag === 'ok2' || payload.tag === 'ok') {
          return { ran: payload.tag }
        }
        throw Object.assign(new Error(`${payload.tag} failed`), { code: payload.tag })
      }
      // one fetch takes every job of a queue: each queue is one batch
      for (const q of ['mixed', 'alike', 'apart']) {
        await tb.work(q, { batchSize: 10, pollingIntervalSeconds: 0.5 }, handler)
      }
      const states = await until(async () => {
        const { rows } = await fx.db.pool.query(
          'select id, state, output from pgboss.job where id = any($1::uuid[])',
          [Object.values(ids)],
        )
        const done = rows.every((r) => r.state === 'completed' || r.state === 'failed')
        return rows.length === Object.keys(ids).length && done && rows
      })
      const of = (key: string) => states.find((r) => r.id === ids[key])!
      for (const key of ['mixed0', 'mixed2', 'apart2']) expect(of(key).state).toBe('completed')
      const boom = { name: 'Error', message: 'boom failed', code: 'boom' }
      for (const key of ['mixed1', 'mixed3', 'alike0', 'alike1', 'apart0']) {
        expect([key, of(key).state, of(key).output]).toEqual([key, 'failed', boom])
      }
      expect(of('apart1').output).toEqual({ name: 'Error', message: 'bang failed', code: 'bang' })
      expect(of('raw')).toMatchObject({ state: 'failed', output: { reason: 'no-tenant' } })
      // one write per job: a failed job was never completed, nor failed twice
      const { rows } = await fx.db.pool.query(
        "select count(*)::int as n from pgboss.job where id = any($1::uuid[]) and state = 'failed' and retry_count > 0",
        [Object.values(ids)],
      )
      expect(rows[0].n).toBe(0)
    } finally {
      await boss.stop({ graceful: false, wait: true })
      await fx.cleanup()
    }
  })
})

describe('pg-boss: the wait policy', () => {
  it("a suspended tenant's job whose copy the queue refuses fails by the queue rules instead of completing", async () => {
    const fx = await setupJobsFixture('pgboss_wait_copy')
    const boss = await startBoss(fx)
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

describe('pg-boss: insert', () => {
  it("seals every job for its own queue; singleton keys are the tenant's own; a bad entry inserts nothing", async () => {
    const fx = await setupJobsFixture('pgboss_insert')
    const boss = await startBoss(fx)
    try {
      const jobs = fx.jobs()
      const tb = tenantPgBoss(boss, jobs)
      for (const queue of ['probe', 'global']) {
        await boss.createQueue(queue, { name: queue, retryLimit: 0 })
      }
      const count = async () =>
        (await fx.db.pool.query(`select count(*)::int as n from pgboss.job`)).rows[0].n as number
      await expect(tb.insert([{ name: 'probe', data: { tag: 'nobody' } }])).rejects.toThrow(
        /tenant/i,
      )
      await expect(
        runWithTenant('4', () =>
          tb.insert([
            { name: 'probe', data: { tag: 'first' } },
            { name: 'nowhere', data: { tag: 'lost' } },
          ]),
        ),
      ).rejects.toMatchObject({ reason: 'unknown-queue' })
      await expect(
        runWithTenant('4', () => tb.insert([{ name: 'probe', data: { tag: 'f' }, fair: true }])),
      ).rejects.toThrow(/fair/)
      expect(await count()).toBe(0)

      await runWithTenant('4', () =>
        tb.insert([
          { name: 'probe', data: { tag: 'ins-1', want: '4' } },
          { name: 'probe', data: { tag: 'ins-2', want: '4' }, singletonKey: 'k' },
          { name: 'global', data: { tag: 'ins-g' } },
        ]),
      )
      const { rows } = await fx.db.pool.query(
        `select singleton_key from pgboss.job where data->'payload'->>'tag' = 'ins-2'`,
      )
      expect(rows).toEqual([{ singleton_key: '4/k' }])
      for (const queue of ['probe', 'global']) {
        await tb.work(
          queue,
          { pollingIntervalSeconds: 0.5, includeMetadata: true },
          fx.handlers[queue]!,
        )
      }
      const seen = await until(() => fx.seen.length >= 3 && fx.seen)
      const byTag = Object.fromEntries(seen.map((s) => [s.tag, s]))
      for (const tag of ['ins-1', 'ins-2']) {
        expect(byTag[tag]).toMatchObject({ tenant: '4', bound: '4', accounts: fx.accountsOf('4') })
      }
      expect(byTag['ins-g']).toMatchObject({ tenant: undefined, crossReason: 'nightly rollup' })
    } finally {
      await boss.stop({ graceful: false, wait: true })
      await fx.cleanup()
    }
  })
})
