/**
 * Hostile tenant code against the jobs layer: the fan-out ledger (another tenant's failure
 * text, another tenant marked done) and signed job envelopes written by something else.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { installAuditLog } from '../src/audit/index.js'
import { runWithTenant } from '../src/context/index.js'
import { createJobTenancy, forEachTenant, installRunLedger } from '../src/jobs/index.js'
import { withTenantClient } from '../src/pg/index.js'
import { TenantStore } from '../src/tenants/index.js'
import { createTestDatabase } from './helpers/db.js'
import { type RlsFixture, setupRlsFixture } from './rls-fixture.js'

let fx: RlsFixture
let admin: import('pg').Pool
let store: TenantStore

beforeAll(async () => {
  const db = await createTestDatabase('adv_fan_out_ledger')
  fx = await setupRlsFixture(db)
  admin = db.pool
  await installAuditLog(admin)
  await installRunLedger(admin, { grantTo: fx.role })
  store = new TenantStore({ db: admin })
})
afterAll(() => fx?.cleanup())

describe('forEachTenant ledger', () => {
  it("a tenant's code sees only its own ledger rows, and cannot mark another tenant done", async () => {
    const pool = fx.runtimePool(2)
    const summary = await forEachTenant(
      async (tenant) => {
        if (tenant.id === '2') throw new Error('tenant 2 secret: iban DE00 1234')
      },
      { pool, store, audit: { db: admin }, run: 'adv-run', reason: 'adversarial ledger test' },
    )
    expect(summary.failed.map((f) => f.tenantId)).toEqual(['2'])
    // The coordinator recorded the failure (on the owner's pool).
    const recorded = await admin.query(
      `select tenant_id, state, error from rowtenancy_runs where run = 'adv-run' order by 1`,
    )
    expect(recorded.rows.map((r) => [r.tenant_id, r.state])).toEqual([
      ['1', 'done'],
      ['2', 'failed'],
    ])
    // Tenant 1's request code on the runtime role, bound to tenant 1.
    const asTenant1 = <T>(fn: (c: import('pg').PoolClient) => Promise<T>) =>
      withTenantClient(pool, fn, { tenantId: '1' })
    const seen = await asTenant1(async (c) => (await c.query('select * from rowtenancy_runs')).rows)
    expect(seen.map((r) => r.tenant_id)).toEqual(['1'])
    const updated = await asTenant1(
      async (c) =>
        (
          await c.query(
            `update rowtenancy_runs set state = 'done', error = null where tenant_id = '2'`,
          )
        ).rowCount,
    )
    expect(updated).toBe(0)
    await expect(
      asTenant1((c) =>
        c.query(
          `insert into rowtenancy_runs (run, tenant_id, state) values ('next-night', '2', 'done')`,
        ),
      ),
    ).rejects.toThrow(/row-level security/)
    // Unbound, the runtime role sees no row at all.
    const unbound = await pool.query('select count(*)::int as n from rowtenancy_runs')
    expect(unbound.rows[0].n).toBe(0)
    const ran: string[] = []
    await forEachTenant(
      async (tenant) => {
        ran.push(tenant.id)
      },
      { pool, store, audit: { db: admin }, run: 'next-night', reason: 'adversarial ledger test' },
    )
    expect(ran.sort()).toEqual(['1', '2'])
  })
})

describe('signed jobs written by something else', () => {
  it('forged tenant, copied signatures, payload claims', async () => {
    const jt = createJobTenancy({
      store,
      queues: { mail: true, other: true },
      secret: 'a-very-long-secret-0123456789',
    })
    const j1 = await runWithTenant('1', async () => jt.seal('mail', { to: 'x', n: 1 }))
    const j1b = await runWithTenant('1', async () => jt.seal('mail', { n: 1, to: 'x' }))
    const j2 = await runWithTenant('2', async () => jt.seal('mail', { to: 'y' }))
    const o1 = await runWithTenant('1', async () => jt.seal('other', { to: 'x', n: 1 }))
    const forged: [string, string, unknown][] = [
      [
        'tenant swapped',
        'mail',
        { rowtenancy: { ...j1.rowtenancy, tenant: '2' }, payload: j1.payload },
      ],
      [
        'sig of tenant 2 on tenant 1 payload as 2',
        'mail',
        { rowtenancy: { ...j2.rowtenancy }, payload: j1.payload },
      ],
      [
        'other queue sig',
        'mail',
        { rowtenancy: { ...o1.rowtenancy, tenant: '1' }, payload: { to: 'x', n: 2 } },
      ],
      ['other queue job replayed on mail', 'mail', o1 as unknown],
      [
        'tenant "02"',
        'mail',
        { rowtenancy: { ...j2.rowtenancy, tenant: '02' }, payload: j2.payload },
      ],
      [
        'tenant " 2"',
        'mail',
        { rowtenancy: { ...j2.rowtenancy, tenant: ' 2' }, payload: j2.payload },
      ],
      ['payload claims tenant 2, no envelope', 'mail', { tenant_id: 2, to: 'y' }],
      [
        'payload changed',
        'mail',
        { rowtenancy: j1.rowtenancy, payload: { to: 'x', n: 1, tenant_id: 2 } },
      ],
      ['no sig', 'mail', { rowtenancy: { v: 1, tenant: '2' }, payload: {} }],
      [
        'sig null payload',
        'mail',
        { rowtenancy: { v: 1, tenant: '2', sig: j2.rowtenancy.sig }, payload: null },
      ],
      [
        'keys reordered (ok, same tenant)',
        'mail',
        { rowtenancy: j1b.rowtenancy, payload: { to: 'x', n: 1 } },
      ],
    ]
    const results: string[] = []
    for (const [name, queue, data] of forged) {
      const r = await jt.admit(queue, data, 'job-' + name).then(
        (a: any) => `ADMITTED ${a.kind} ${a.tenant?.id ?? ''}`,
        (e: any) => `refused ${e.code ?? e.reason ?? e.message.slice(0, 40)}`,
      )
      results.push(`${name}: ${r}`)
    }
    const bad = results.filter((r) => r.includes('ADMITTED') && !r.startsWith('keys reordered'))
    expect(bad).toEqual([])
  })
})
