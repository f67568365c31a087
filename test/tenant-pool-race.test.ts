import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runWithTenant } from '../src/context/index.js'
import { TenantPool } from '../src/pg/index.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'
import { type RlsFixture, setupRlsFixture } from './rls-fixture.js'

let db: TestDatabase
let fx: RlsFixture
const pools: TenantPool[] = []
const names = (rows: { name: string }[]) => rows.map((r) => r.name).sort()

beforeAll(async () => {
  db = await createTestDatabase('tenant_pool_race')
  fx = await setupRlsFixture(db)
})
afterAll(async () => {
  await Promise.all(pools.map((p) => p.end().catch(() => {})))
  await fx.cleanup()
})

function tenantPool(inner: pg.Pool): TenantPool {
  const pool = new TenantPool({ pool: inner, endPool: false })
  pools.push(pool)
  return pool
}

/**
 * Statements sent at once on one checked-out client: the session reset that rides
 * after statement A must not mark the session clean when statement B, sent while A
 * was in flight (a multi-statement text, a submittable: no reset of its own), runs
 * after that reset on the wire.
 */
describe('the session reset under statements sent at once on one checkout', () => {
  it('a session-level tenant set by a multi-statement text does not survive into the next checkout', async () => {
    const inner = fx.runtimePool(1)
    const pool = tenantPool(inner)
    await runWithTenant(1, () => pool.query('select name from accounts'))
    const client = await pool.connect()
    await runWithTenant(1, async () => {
      const a = client.query("select set_config('application_name', 'x', false)")
      const b = client.query("select 1; select set_config('rowtenancy.tenant_id', '2', false)")
      await Promise.all([a, b])
    })
    client.release()
    // the next request, no tenant in context: RLS shows no tenant rows
    const { rows } = await pool.query('select name from accounts')
    expect(names(rows)).toEqual([])
  })

  it('nor one set by a submittable, with no tenant in context', async () => {
    const inner = fx.runtimePool(1)
    const pool = tenantPool(inner)
    await pool.query('select 1')
    const client = await pool.connect()
    const a = client.query("select set_config('application_name', 'x', false)")
    const b = client.query(
      new pg.Query("select set_config('rowtenancy.tenant_id', '2', false)") as never,
    )
    await Promise.all([a, new Promise((r) => (b as unknown as pg.Query).on('end', r))])
    client.release()
    const { rows } = await pool.query('select name from accounts')
    expect(names(rows)).toEqual([])
  })
})
