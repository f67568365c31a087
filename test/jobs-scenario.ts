import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runWithTenant } from '../src/context/index.js'
import { MissingTenantError } from '../src/errors/index.js'
import { JobRejectedError } from '../src/jobs/index.js'
import { type JobsFixture, SUSPENDED, setupJobsFixture, TENANTS, until } from './jobs-fixture.js'

/** One queue under test, driven the same way for every adapter. */
export interface QueueHarness {
  /** Sends through the rowtenancy adapter, in the current context. */
  send(
    queue: string,
    payload: unknown,
    options?: { delayMs?: number; attempts?: number },
  ): Promise<string>
  /** Makes a delayed job due now. */
  promote(queue: string, id: string): Promise<void>
  /** Writes a job with the bare queue client (data exactly as given, one attempt). */
  sendRaw(queue: string, data: unknown): Promise<string>
  /** The job's final outcome, or undefined while it may still run. */
  outcome(
    queue: string,
    id: string,
  ): Promise<{ state: 'failed' | 'completed'; error: string } | undefined>
  stop(): Promise<void>
}

/** The behaviour every adapter must show on its real queue. */
export function jobScenarios(name: string, open: (fx: JobsFixture) => Promise<QueueHarness>): void {
  describe(`${name}: the tenant travels with every job`, () => {
    let fx: JobsFixture
    let h: QueueHarness
    beforeAll(async () => {
      fx = await setupJobsFixture(name.replace(/\W/g, '_'))
      h = await open(fx)
    })
    afterAll(async () => {
      await h?.stop()
      await fx?.cleanup()
    })
    const byTag = (tag: string) => fx.seen.filter((s) => s.tag === tag)
    const finalOutcome = (queue: string, id: string) =>
      until(() => h.outcome(queue, id), 20_000, `job ${id} to finish`)
    const hits = async (tagLike: string) =>
      (
        await fx.db.pool.query(
          'select tenant_id::text as tenant, seen from job_hits where tag like $1 order by tenant_id, id',
          [tagLike],
        )
      ).rows

    it("a job sent in tenant 1's context reads and writes only tenant 1's rows under RLS", async () => {
      const id = await runWithTenant('1', () => h.send('probe', { tag: 'one', want: '1' }))
      const [s] = await until(() => byTag('one').length > 0 && byTag('one'))
      expect(s).toMatchObject({ tenant: '1', bound: '1', accounts: ['a1', 'a2'], attempt: 1 })
      expect(await hits('one')).toEqual([{ tenant: '1', seen: 'a1,a2' }])
      expect((await finalOutcome('probe', id)).state).toBe('completed')
    })

    it('100 concurrent jobs for 10 tenants, interleaved: each runs as, reads and writes its own tenant', async () => {
      await Promise.all(
        Array.from({ length: 100 }, (_, i) => {
          const t = TENANTS[i % 10]!
          return runWithTenant(t, () => h.send('probe', { tag: `c${i}`, want: t }))
        }),
      )
      const runs = await until(() => {
        const c = fx.seen.filter((s) => /^c\d+$/.test(s.tag))
        return c.length >= 100 && c
      }, 40_000)
      expect(runs).toHaveLength(100)
      for (const s of runs) {
        expect({ tag: s.tag, tenant: s.tenant, bound: s.bound, accounts: s.accounts }).toEqual({
          tag: s.tag,
          tenant: s.want,
          bound: s.want,
          accounts: fx.accountsOf(s.want!),
        })
      }
      const rows = await hits('c%')
      expect(rows).toHaveLength(100)
      for (const r of rows) expect(r.seen).toBe(fx.accountsOf(r.tenant).join(','))
    })

    it('a retry after a thrown error keeps the tenant', async () => {
      const id = await runWithTenant('3', () =>
        h.send('probe', { tag: 'flaky', want: '3', failFirst: true }, { attempts: 2 }),
      )
      const runs = await until(() => byTag('flaky').length >= 2 && byTag('flaky'), 30_000)
      expect(runs.map((s) => [s.attempt, s.tenant, s.bound])).toEqual([
        [1, '3', '3'],
        [2, '3', '3'],
      ])
      expect((await finalOutcome('probe', id)).state).toBe('completed')
    })

    it('a delayed job keeps its tenant and waits for its time', async () => {
      const t0 = Date.now()
      await runWithTenant('4', () =>
        h.send('probe', { tag: 'later', want: '4' }, { delayMs: 1500 }),
      )
      const [s] = await until(() => byTag('later').length > 0 && byTag('later'))
      expect(s).toMatchObject({ tenant: '4', bound: '4', accounts: ['t4'] })
      expect(s!.at - t0).toBeGreaterThanOrEqual(1400)
    })

    it('enqueueing refuses: no tenant in context, an unknown queue, a payload naming another tenant', async () => {
      await expect(h.send('probe', { tag: 'nocontext' })).rejects.toThrow(MissingTenantError)
      await expect(h.send('probe', { tag: 'nocontext' })).rejects.toThrow(
        /Enqueueing a job on queue "probe"/,
      )
      await expect(runWithTenant('1', () => h.send('nope', { tag: 'x' }))).rejects.toMatchObject({
        reason: 'unknown-queue',
        message: expect.stringMatching(/Unknown job queue "nope".*declared: probe, hold, global/),
      })
      await expect(
        runWithTenant('1', () => h.send('probe', { tag: 'claims', tenant_id: 2 })),
      ).rejects.toMatchObject({
        reason: 'payload-tenant',
        message: expect.stringMatching(/names tenant "2"/),
      })
    })

    it('is not run as anyone: no envelope, a payload claiming a tenant, a missing, forged or transplanted signature', async () => {
      const sealed = runWithTenant('1', () => fx.jobs().seal('probe', { tag: 'genuine' }))
      const cases: [unknown, RegExp][] = [
        [{ tag: 'bare' }, /carries no tenant \(no "rowtenancy" envelope/],
        [{ tag: 'claim', tenant_id: '2' }, /its data claims a tenant in "tenant_id"/],
        [{ rowtenancy: { v: 1, tenant: '2' }, payload: { tag: 'nosig' } }, /signature is missing/],
        [
          { rowtenancy: { v: 1, tenant: '2', sig: 'AAAA' }, payload: { tag: 'forged' } },
          /signature is wrong/,
        ],
        [
          { rowtenancy: { ...sealed.rowtenancy, tenant: '2' }, payload: sealed.payload },
          /signature is wrong/,
        ],
        [{ rowtenancy: sealed.rowtenancy, payload: { tag: 'swapped' } }, /signature is wrong/],
        [{ rowtenancy: { v: 2, tenant: '1' }, payload: { tag: 'v2' } }, /envelope is malformed/],
      ]
      const ids = await Promise.all(cases.map(([data]) => h.sendRaw('probe', data)))
      for (const [i, id] of ids.entries()) {
        const out = await finalOutcome('probe', id)
        expect(out.state).toBe('failed')
        expect(out.error).toMatch(cases[i]![1])
      }
      for (const tag of ['bare', 'claim', 'nosig', 'forged', 'genuine', 'swapped', 'v2']) {
        expect(byTag(tag)).toEqual([])
      }
      expect(await hits('genuine')).toEqual([])
    })

    it("a suspended tenant's job fails with the reason (policy fail) and is not run", async () => {
      const id = await runWithTenant(SUSPENDED, () => h.send('probe', { tag: 'susp' }))
      const out = await finalOutcome('probe', id)
      expect(out).toMatchObject({
        state: 'failed',
        error: expect.stringMatching(/"sleepy" \(20\) is suspended/),
      })
      expect(byTag('susp')).toEqual([])
    })

    it("a suspended tenant's job waits (policy wait), then runs as that tenant once reactivated", async () => {
      await runWithTenant(SUSPENDED, () => h.send('hold', { tag: 'held', want: SUSPENDED }))
      await new Promise((r) => setTimeout(r, 1500))
      expect(byTag('held')).toEqual([])
      await fx.store.activate(SUSPENDED)
      const [s] = await until(() => byTag('held').length > 0 && byTag('held'), 20_000)
      expect(s).toMatchObject({ tenant: SUSPENDED, bound: SUSPENDED, accounts: ['z1'] })
      await fx.store.suspend(SUSPENDED)
    })

    it('a tenant deleted between enqueue and run: refused, and the job is kept (failed), not run', async () => {
      await fx.db.pool.query(`insert into tenants (id, slug, name) values (30, 'ghost', 'Ghost')`)
      // delayed past the test, so it cannot run before the delete; made due after it
      const id = await runWithTenant('30', () =>
        h.send('probe', { tag: 'ghost' }, { delayMs: 600_000 }),
      )
      await fx.store.delete('30')
      await h.promote('probe', id)
      const out = await finalOutcome('probe', id)
      expect(out).toMatchObject({
        state: 'failed',
        error: expect.stringMatching(/tenant "30" does not exist/),
      })
      expect(byTag('ghost')).toEqual([])
    })

    it('a cross-tenant queue runs its jobs in an audited withoutTenant(reason)', async () => {
      const id = await h.send('global', { tag: 'rollup' })
      const [s] = await until(() => byTag('rollup').length > 0 && byTag('rollup'))
      expect(s).toMatchObject({ tenant: undefined, crossReason: 'nightly rollup' })
      const { rows } = await fx.db.pool.query(
        `select source, reason, actor, statement from audit_log where actor = 'job:global'`,
      )
      expect(rows).toEqual([
        {
          source: 'withoutTenant',
          reason: 'nightly rollup',
          actor: 'job:global',
          statement: 'run cross-tenant job on queue global',
        },
      ])
      expect((await finalOutcome('global', id)).state).toBe('completed')
    })

    it('rejections are JobRejectedError with a stable code', () => {
      expect(() => fx.jobs().rule('nope')).toThrow(JobRejectedError)
    })
  })
}
