import {
  Logger,
  makeWorkerUtils,
  parseCronItems,
  type Runner,
  run,
  type WorkerUtils,
} from 'graphile-worker'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runWithTenant } from '../src/context/index.js'
import { tenantAddJob, tenantAddJobs, tenantCronItems, tenantTaskList } from '../src/jobs/index.js'
import { TenantStore } from '../src/tenants/index.js'
import { type JobsFixture, setupJobsFixture, until } from './jobs-fixture.js'

/**
 * graphile-worker's own scheduler: each item's crontab is made known three minutes ago, so the
 * runner backfills the minutes since at start (real cron runs, no waiting for the clock).
 */
let fx: JobsFixture
let utils: WorkerUtils
let runner: Runner

beforeAll(async () => {
  fx = await setupJobsFixture('gw_cron')
  const logger = new Logger(() => () => {})
  utils = await makeWorkerUtils({ connectionString: fx.db.url, logger })
  await utils.migrate()
  await fx.db.pool.query(
    `insert into graphile_worker._private_known_crontabs (identifier, known_since)
     select id, now() - interval '3 minutes' from unnest(array['rollup', 'tenant-2', 'unsealed']) id`,
  )
  const jobs = fx.jobs()
  const every = { match: '* * * * *', options: { backfillPeriod: 150_000, maxAttempts: 1 } }
  const crossTenant = tenantCronItems(jobs, [
    { task: 'global', identifier: 'rollup', payload: { tag: 'cron-rollup' }, ...every },
  ])
  const tenant2 = runWithTenant('2', () =>
    tenantCronItems(jobs, [
      { task: 'probe', identifier: 'tenant-2', payload: { tag: 'cron-2' }, ...every },
    ]),
  )
  const unsealed = [
    {
      task: 'probe',
      identifier: 'unsealed',
      payload: { tag: 'cron-bare', tenantId: '1' },
      ...every,
    },
  ]
  runner = await run({
    connectionString: fx.db.url,
    concurrency: 4,
    pollInterval: 200,
    noHandleSignals: true,
    logger,
    taskList: tenantTaskList(jobs, fx.handlers),
    parsedCronItems: parseCronItems([...crossTenant, ...tenant2, ...unsealed]),
  })
}, 60_000)

afterAll(async () => {
  await runner?.stop()
  await utils?.release()
  await fx?.cleanup()
})

describe('graphile-worker cron items through tenantCronItems', () => {
  it('a cross-tenant item runs in its audited scope, a tenant item as its tenant, an unsealed one as no one', async () => {
    const runsOf = (tag: string) => fx.seen.filter((s) => s.tag === tag)
    await until(
      () => runsOf('cron-rollup').length >= 2 && runsOf('cron-2').length >= 2,
      20_000,
      'cron runs',
    )
    for (const s of runsOf('cron-rollup')) {
      expect(s).toMatchObject({ tenant: undefined, crossReason: 'nightly rollup' })
    }
    for (const s of runsOf('cron-2')) {
      expect(s).toMatchObject({ tenant: '2', bound: '2', accounts: fx.accountsOf('2') })
    }
    const failed = await until(
      async () => {
        const { rows } = await fx.db.pool.query(
          `select j.last_error from graphile_worker._private_jobs j
          where j.payload->>'tag' = 'cron-bare' and j.attempts >= j.max_attempts and j.locked_at is null`,
        )
        return rows.length >= 2 ? rows : undefined
      },
      20_000,
      'the unsealed runs to fail',
    )
    for (const r of failed)
      expect(r.last_error).toMatch(/cron run whose item was not sealed.*tenantCronItems/)
    expect(runsOf('cron-bare')).toEqual([])
    const { rows: audited } = await fx.db.pool.query(
      `select count(*)::int as n from audit_log where reason = 'nightly rollup'`,
    )
    expect(audited[0].n).toBeGreaterThanOrEqual(runsOf('cron-rollup').length)
  })

  it("an item's jobKey is its tenant's own, as addJob's is: two tenants' schedules never replace each other's runs", () => {
    const jobs = fx.jobs()
    const item = (identifier: string) => ({
      task: 'probe',
      identifier,
      match: '0 4 * * *',
      options: { jobKey: 'nightly', backfillPeriod: 0 },
    })
    const [one] = runWithTenant('1', () => tenantCronItems(jobs, [item('nightly-1')]))
    const [two] = runWithTenant('2', () => tenantCronItems(jobs, [item('nightly-2')]))
    expect([one!.options, two!.options]).toEqual([
      { jobKey: '1/nightly', backfillPeriod: 0 },
      { jobKey: '2/nightly', backfillPeriod: 0 },
    ])
    const [global] = tenantCronItems(jobs, [{ ...item('rollup'), task: 'global' }])
    expect(global!.options).toEqual({ jobKey: 'nightly', backfillPeriod: 0 })
  })

  it('outside a tenant context a tenant task cannot be sealed', () => {
    expect(() => tenantCronItems(fx.jobs(), [{ task: 'probe', match: '* * * * *' }])).toThrow(
      /tenant/i,
    )
  })
})

describe('graphile-worker addJobs through tenantAddJobs', () => {
  it("seals every job for its own task, keys and named queues the tenant's own; a bad entry adds nothing", async () => {
    const jobs = fx.jobs()
    const addJobs = tenantAddJobs(utils, jobs, { tenantQueue: true })
    const count = async () =>
      (
        await fx.db.pool.query(
          `select count(*)::int as n from graphile_worker._private_jobs where payload->'payload'->>'tag' like 'batch-%'`,
        )
      ).rows[0].n as number
    await expect(
      addJobs([{ identifier: 'probe', payload: { tag: 'batch-nobody' } }]),
    ).rejects.toThrow(/tenant/i)
    await expect(
      runWithTenant('6', () =>
        addJobs([
          { identifier: 'probe', payload: { tag: 'batch-first' } },
          { identifier: 'nowhere', payload: { tag: 'batch-lost' } },
        ]),
      ),
    ).rejects.toMatchObject({ reason: 'unknown-queue' })
    expect(await count()).toBe(0)
    expect(() => tenantAddJobs(utils, jobs, { fair: true } as never)).toThrow(/fair/)

    const added = await runWithTenant('6', () =>
      addJobs([
        { identifier: 'probe', payload: { tag: 'batch-1', want: '6' } },
        { identifier: 'probe', payload: { tag: 'batch-2', want: '6' }, jobKey: 'k' },
        { identifier: 'global', payload: { tag: 'batch-g' } },
      ]),
    )
    expect(added).toHaveLength(3)
    const { rows } = await fx.db.pool.query(
      `select j.key, q.queue_name from graphile_worker._private_jobs j
         left join graphile_worker._private_job_queues q on q.id = j.job_queue_id
        where j.payload->'payload'->>'tag' = 'batch-2'`,
    )
    expect(rows).toEqual([{ key: '6/k', queue_name: 'tenant:6' }])
    const runs = await until(() => {
      const seen = fx.seen.filter((s) => s.tag.startsWith('batch-'))
      return seen.length >= 3 && seen
    })
    const byTag = Object.fromEntries(runs.map((s) => [s.tag, s]))
    for (const tag of ['batch-1', 'batch-2']) {
      expect(byTag[tag]).toMatchObject({ tenant: '6', bound: '6', accounts: fx.accountsOf('6') })
    }
    expect(byTag['batch-g']).toMatchObject({ tenant: undefined, crossReason: 'nightly rollup' })
  })
})

describe("graphile-worker: a suspended tenant's held job (suspended: wait)", () => {
  it("keeps its jobKey and flags: the tenant's next job with that key replaces it instead of running beside it", async () => {
    await fx.db.pool.query(
      `insert into tenants (id, slug, name, status) values (30, 'held', 'Held', 'suspended')`,
    )
    const addJob = tenantAddJob(utils, fx.jobs())
    const spec = { jobKey: 'digest', flags: ['slow-lane'], maxAttempts: 3 }
    const first = await runWithTenant('30', () => addJob('hold', { tag: 'held-1' }, spec))
    // held at least once: the original completed and a copy waits in its place
    const copy = await until(
      async () => {
        const { rows } = await fx.db.pool.query(
          `select key, flags, max_attempts from graphile_worker._private_jobs
            where payload->'payload'->>'tag' = 'held-1' and id <> $1 order by id desc limit 1`,
          [first.id],
        )
        return rows[0]
      },
      20_000,
      'the held copy',
    )
    expect(copy).toEqual({ key: '30/digest', flags: { 'slow-lane': true }, max_attempts: 3 })
    // the tenant sends its digest again under the same key: one digest job, not two
    await runWithTenant('30', () => addJob('hold', { tag: 'held-2' }, spec))
    await fx.db.pool.query(`update tenants set status = 'active' where id = 30`)
    const held = () => fx.seen.filter((s) => s.tag.startsWith('held-'))
    await until(() => held().length > 0, 20_000, 'the held job to run')
    await new Promise((r) => setTimeout(r, 1_500))
    expect(held()).toHaveLength(1)
    expect(held()[0]).toMatchObject({ tenant: '30', bound: '30' })
  })
})

describe('graphile-worker batch jobs (array payloads)', () => {
  const seenBatch: { to: string; attempt: number }[] = []
  let batchRunner: Runner | undefined
  const batchJobs = () => fx.jobs({ queues: { 'batch-mail': true } })

  afterAll(async () => {
    await batchRunner?.stop()
  })

  it('an array payload with a jobKey is refused: graphile-worker merges a second one into it, a sealed one would replace it (its entries lost)', async () => {
    const addJob = tenantAddJob(utils, batchJobs())
    for (const items of [[{ to: 'a' }], [{ to: 'b' }]]) {
      await expect(
        runWithTenant('3', () => addJob('batch-mail', items, { jobKey: 'mails' })),
      ).rejects.toThrow(/array payload and a jobKey/)
    }
    await expect(
      runWithTenant('3', () =>
        tenantAddJobs(
          utils,
          batchJobs(),
        )([{ identifier: 'batch-mail', payload: [{ to: 'c' }], jobKey: 'mails' }]),
      ),
    ).rejects.toThrow(/array payload and a jobKey/)
    const { rows } = await fx.db.pool.query(
      `select 1 from graphile_worker._private_jobs where key = '3/mails'`,
    )
    expect(rows).toEqual([])
  })

  it("a batch handler's rejected entry fails the job (retried), never completes it", async () => {
    const jobs = batchJobs()
    batchRunner = await run({
      connectionString: fx.db.url,
      concurrency: 1,
      pollInterval: 200,
      noHandleSignals: true,
      logger: new Logger(() => () => {}),
      taskList: tenantTaskList(jobs, {
        'batch-mail': (items: { to: string; fail?: boolean }[], info) =>
          items.map((item) => {
            seenBatch.push({ to: item.to, attempt: info.attempt })
            return item.fail ? Promise.reject(new Error(`bounce ${item.to}`)) : Promise.resolve()
          }),
      }),
    })
    const added = await runWithTenant('3', () =>
      tenantAddJob(utils, jobs)('batch-mail', [{ to: 'ok' }, { to: 'bad', fail: true }], {
        maxAttempts: 2,
      }),
    )
    await until(() => seenBatch.length >= 2, 20_000, 'the batch to run')
    const job = await until(
      async () => {
        const { rows } = await fx.db.pool.query(
          `select attempts, last_error, locked_at from graphile_worker._private_jobs where id = $1`,
          [added.id],
        )
        return rows[0] === undefined ? 'completed' : rows[0].locked_at === null && rows[0]
      },
      20_000,
      'the batch job to settle',
    )
    expect(job).not.toBe('completed')
    expect(job).toMatchObject({ attempts: 1 })
    expect(job.last_error).toMatch(/bounce bad/)
  })
})

describe("graphile-worker: a held job's key taken by a newer job meanwhile", () => {
  it('the newer job runs; the held one leaves no copy to replace it', async () => {
    await fx.db.pool.query(
      `insert into tenants (id, slug, name, status) values (31, 'held2', 'Held 2', 'suspended')`,
    )
    let release!: () => void
    const gate = new Promise<void>((r) => {
      release = r
    })
    let asked!: () => void
    const lookedUp = new Promise<void>((r) => {
      asked = r
    })
    // a store whose lookup of tenant 31 waits: the job stays locked until the test lets it go
    class GatedStore extends TenantStore {
      override async get(id: unknown) {
        if (String(id) === '31') {
          asked()
          await gate
        }
        return super.get(id)
      }
    }
    const jobs = fx.jobs({
      store: new GatedStore({ db: fx.db.pool, ttlMs: 0 }),
      queues: { 'hold-gated': { suspended: 'wait' } },
    })
    const gated = await run({
      connectionString: fx.db.url,
      concurrency: 1,
      pollInterval: 100,
      noHandleSignals: true,
      logger: new Logger(() => () => {}),
      taskList: tenantTaskList(jobs, { 'hold-gated': fx.handlers.hold! }),
    })
    try {
      const addJob = tenantAddJob(utils, jobs)
      await runWithTenant('31', () => addJob('hold-gated', { tag: 'gate-1' }, { jobKey: 'k' }))
      await lookedUp
      // the running job's key moves to the newer job (graphile-worker's rule for a locked job)
      await runWithTenant('31', () => addJob('hold-gated', { tag: 'gate-2' }, { jobKey: 'k' }))
      release()
      await new Promise((r) => setTimeout(r, 1_000))
      const { rows } = await fx.db.pool.query(
        `select payload->'payload'->>'tag' as tag from graphile_worker._private_jobs
          where key = '31/k'`,
      )
      expect(rows).toEqual([{ tag: 'gate-2' }])
    } finally {
      await gated.stop()
    }
  })
})
