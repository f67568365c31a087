/**
 * A client kept past its checkout: the Proxy guards `query` as a property, but pg.Client's own
 * prototype method (or `leaked.constructor.prototype.query`) called with the proxy as `this`
 * reaches the raw client.
 */
import pg from 'pg'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { runWithTenant } from '../src/entries/index.js'
import { TenantPool, withTenantClient } from '../src/entries/pg.js'
import { type AttackFixture, attackFixture } from './adversarial-fixture.js'

let fx: AttackFixture
const extra: Array<() => Promise<unknown>> = []
beforeAll(async () => {
  fx = await attackFixture('adv_lent')
})
afterAll(async () => {
  for (const f of extra) await f().catch(() => {})
  await fx?.close()
})
beforeEach(() => fx.reseed())

const names = (rows: readonly unknown[]) => rows.map((r) => (r as { name: string }).name).sort()
/** pg's own query called on the view: refused (thrown or rejected) once the view is released. */
const rawQuery = async (c: pg.PoolClient, text: string) =>
  (Object.getPrototypeOf(c).query as (t: string) => Promise<pg.QueryResult>).call(c, text)

describe('withTenantClient: kept client, prototype query', () => {
  it('tenant 1 reads tenant 2 rows through its released client', async () => {
    const pool = new pg.Pool({ connectionString: fx.runtimeUrl, max: 1 })
    extra.push(() => pool.end())
    let leaked: pg.PoolClient | undefined
    await withTenantClient(
      pool,
      async (c) => {
        await c.query('select 1')
        leaked = c
      },
      { tenantId: '1' },
    )
    // sanity: the guarded property refuses
    await expect(leaked!.query('select 1')).rejects.toThrow(/released/)
    const stolen = await withTenantClient(
      pool,
      async (c) => {
        await c.query('select 1')
        return rawQuery(leaked!, 'select name from accounts').then(
          (x) => names(x.rows),
          (e: unknown) => String(e),
        )
      },
      { tenantId: '2' },
    )
    expect(stolen).not.toEqual(['alice-2', 'carol-2'])
  })

  it('tenant 1 updates tenant 2 rows through its released client', async () => {
    const pool = new pg.Pool({ connectionString: fx.runtimeUrl, max: 1 })
    extra.push(() => pool.end())
    let leaked: pg.PoolClient | undefined
    await withTenantClient(
      pool,
      async (c) => {
        leaked = c
      },
      { tenantId: '1' },
    )
    const before = await fx.foreignRows()
    await withTenantClient(
      pool,
      async (c) => {
        await c.query('select 1')
        await rawQuery(leaked!, "update accounts set name = name || '-pwned'").catch(() => {})
      },
      { tenantId: '2' },
    )
    const after = await fx.foreignRows()
    expect(after).toBe(before)
  })
})

describe('TenantPool: kept client, prototype query', () => {
  it('tenant 1 reads tenant 2 rows in tenant 2 transaction', async () => {
    const pool = new TenantPool({ pool: new pg.Pool({ connectionString: fx.runtimeUrl, max: 1 }) })
    extra.push(() => pool.end())
    let leaked: pg.PoolClient | undefined
    await runWithTenant('1', async () => {
      const c = await pool.connect()
      await c.query('select 1')
      leaked = c
      c.release()
    })
    await expect(leaked!.query('select 1')).rejects.toThrow(/released/)
    const stolen = await runWithTenant('2', async () => {
      const c = await pool.connect()
      try {
        await c.query('begin')
        await c.query('select name from accounts')
        const r = await runWithTenant('1', () =>
          rawQuery(leaked!, 'select name from accounts').then(
            (x) => names(x.rows),
            (e: unknown) => String(e),
          ),
        )
        await c.query('commit')
        return r
      } finally {
        c.release()
      }
    })
    expect(stolen).not.toEqual(['alice-2', 'carol-2'])
  })
})
