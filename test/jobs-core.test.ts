import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runWithTenant, withoutTenant } from '../src/context/index.js'
import { ConfigError, InvalidTenantIdError, MissingTenantError } from '../src/errors/index.js'
import { createJobTenancy, JobRejectedError, tenantTaskList } from '../src/jobs/index.js'
import { installTenantTables, TenantStore } from '../src/tenants/index.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'

let db: TestDatabase
let store: TenantStore
const SECRET = 'a-secret-of-at-least-16-bytes'

beforeAll(async () => {
  db = await createTestDatabase('jobs_core')
  await installTenantTables(db.pool, { idType: 'bigint' })
  await db.pool.query(
    `insert into tenants (id, slug, name) values (1, 'one', 'One'), (2, 'two', 'Two')`,
  )
  store = new TenantStore({ db: db.pool, ttlMs: 0 })
})
afterAll(async () => {
  await db?.drop()
})

const make = (extra: Record<string, unknown> = {}) =>
  createJobTenancy({
    store,
    audit: { db: db.pool, table: false as const },
    secret: SECRET,
    queues: { work: true, global: { crossTenant: 'rollup' } },
    ...extra,
  })

describe('job envelope', () => {
  it('keeps the tenant beside the payload, never inside it', () => {
    const sealed = runWithTenant('1', () => make({ secret: undefined }).seal('work', { a: 1 }))
    expect(sealed).toEqual({ rowtenancy: { v: 1, tenant: '1' }, payload: { a: 1 } })
  })

  it('a signature survives jsonb reordering keys and canonicalizes ids (007 -> 7)', async () => {
    const jobs = make()
    const payload = {
      zeta: 1,
      a: { yy: 2, b: [{ dddd: 1, c: 2 }] },
      mid: 'x',
      gone: undefined,
      n: { '10': 1, '2': 2, bb: 1, c: 2 },
      at: new Date(0),
    }
    const sealed = runWithTenant('007', () => jobs.seal('work', payload))
    expect(sealed.rowtenancy.tenant).toBe('7')
    const viaDb = runWithTenant('1', () => jobs.seal('work', payload))
    const { rows } = await db.pool.query('select $1::jsonb as d', [JSON.stringify(viaDb)])
    expect(Object.keys(rows[0].d.payload)).not.toEqual(Object.keys(payload))
    const admitted = await jobs.admit('work', rows[0].d, 'j1')
    expect(admitted).toMatchObject({
      kind: 'tenant',
      tenant: { id: '1' },
      payload: { zeta: 1, mid: 'x', n: { '10': 1, '2': 2, bb: 1, c: 2 }, at: new Date(0).toJSON() },
    })
    // jsonb put "c" before "bb": the canonical text, not the key order, is what is signed
    expect(Object.keys(rows[0].d.payload.n)).not.toEqual(Object.keys(viaDb.payload.n))
  })

  it('refuses another secret, and a signature moved to another queue', async () => {
    const sealed = runWithTenant('1', () =>
      make({ secret: 'another-secret-of-16-bytes' }).seal('work', {}),
    )
    await expect(make().admit('work', sealed, 'j')).rejects.toMatchObject({
      reason: 'bad-signature',
    })
    const jobs = make({ queues: { work: true, other: true } })
    const forOther = runWithTenant('1', () => jobs.seal('other', {}))
    await expect(jobs.admit('work', forOther, 'j')).rejects.toMatchObject({
      reason: 'bad-signature',
    })
  })

  it('without a secret jobs are not signed, and run without one', async () => {
    const jobs = make({ secret: undefined })
    const sealed = runWithTenant('2', () => jobs.seal('work', null))
    expect(sealed.rowtenancy.sig).toBeUndefined()
    await expect(jobs.admit('work', sealed, 'j')).resolves.toMatchObject({
      kind: 'tenant',
      tenant: { id: '2' },
    })
  })

  it('enqueue fails closed: no tenant, inside withoutTenant, a malformed current tenant', () => {
    const jobs = make()
    expect(() => jobs.seal('work', {})).toThrow(MissingTenantError)
    expect(() => withoutTenant('x', () => jobs.seal('work', {}))).toThrow(MissingTenantError)
    expect(() => runWithTenant('abc', () => jobs.seal('work', {}))).toThrow(InvalidTenantIdError)
  })

  it('a payload naming the same tenant is fine; naming another one is refused', () => {
    const jobs = make()
    expect(runWithTenant('1', () => jobs.seal('work', { tenantId: 1 })).payload).toEqual({
      tenantId: 1,
    })
    for (const key of ['tenant_id', 'tenantId', 'tenant']) {
      expect(() => runWithTenant('1', () => jobs.seal('work', { [key]: '2' }))).toThrow(
        expect.objectContaining({ reason: 'payload-tenant' }),
      )
    }
  })

  it('cross-tenant queues carry no tenant; a tenant in a cross-tenant job is malformed', async () => {
    const jobs = make()
    expect(jobs.seal('global', { x: 1 }).rowtenancy.tenant).toBeNull()
    expect(runWithTenant('1', () => jobs.seal('global', {})).rowtenancy.tenant).toBeNull()
    const tenantJob = runWithTenant('1', () =>
      make({ queues: { global: true } }).seal('global', {}),
    )
    await expect(jobs.admit('global', tenantJob, 'j')).rejects.toMatchObject({
      reason: 'malformed',
    })
    await expect(jobs.admit('global', jobs.seal('global', {}), 'j')).resolves.toMatchObject({
      kind: 'cross',
      reason: 'rollup',
    })
  })

  it('malformed envelopes and extra keys beside it are refused', async () => {
    const jobs = make({ secret: undefined })
    for (const data of [
      null,
      [],
      'text',
      { rowtenancy: null, payload: 1 },
      { rowtenancy: { v: 1, tenant: 7 }, payload: 1 },
      { rowtenancy: { v: 1, tenant: '1' }, payload: 1, tenant_id: '2' },
      { rowtenancy: { v: 1, tenant: 'abc' }, payload: 1 },
    ]) {
      await expect(jobs.admit('work', data, 'j')).rejects.toBeInstanceOf(JobRejectedError)
    }
  })

  it('retryable only when time can cure it', () => {
    expect(new JobRejectedError('suspended', 'x')).toMatchObject({
      retryable: true,
      code: 'JOB_REJECTED',
    })
    expect(new JobRejectedError('unknown-tenant', 'x').retryable).toBe(true)
    expect(new JobRejectedError('bad-signature', 'x').retryable).toBe(false)
  })

  it('configuration errors say what to do', () => {
    expect(() => createJobTenancy({ store, queues: { g: { crossTenant: 'r' } } })).toThrow(
      /pass audit/,
    )
    expect(() => make({ secret: 'short' })).toThrow(/at least 16 bytes/)
    expect(() => make({ suspended: 'sleep' })).toThrow(ConfigError)
    expect(() => make({ queues: {} })).toThrow(/needs queues/)
    expect(() => make({ queues: { q: { crossTenant: ' ' } } })).toThrow(
      /reason written to the audit log/,
    )
    expect(() => make({ waitMs: -1 })).toThrow(/waitMs/)
    const jobs = make()
    expect(() => tenantTaskList(jobs, { work: () => 1 }, { unavailableHoldMs: -1 })).toThrow(
      /unavailableHoldMs must be a whole number/,
    )
  })
})
