import pg from 'pg'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { runWithTenant } from '../src/entries/index.js'
import { TenantPool } from '../src/entries/pg.js'
import { type AttackFixture, attackFixture } from './adversarial-fixture.js'

/* Hostile code: the tenant pool (what ORMs use), one connection so every checkout reuses it. */

let fx: AttackFixture
let pool: TenantPool
beforeAll(async () => {
  fx = await attackFixture('adv_pool_state')
  pool = new TenantPool({ pool: new pg.Pool({ connectionString: fx.runtimeUrl, max: 1 }) })
})
afterAll(async () => {
  await pool?.end().catch(() => {})
  await fx?.close()
})
beforeEach(() => fx.reseed())

const names = (rows: readonly unknown[]) => rows.map((r) => (r as { name: string }).name).sort()

describe('tenant pool', () => {
  it('a cursor WITH HOLD opened in a tenant 1 ORM transaction is not fetchable by tenant 2', async () => {
    await runWithTenant('1', async () => {
      const c = await pool.connect()
      try {
        await c.query('begin')
        await c.query('declare rt_p cursor with hold for select name from accounts')
        await c.query('commit')
      } finally {
        c.release()
      }
    })
    const outcome = await runWithTenant('2', () =>
      pool.query('fetch all from rt_p').then(
        (r: pg.QueryResult) => names(r.rows),
        (e: unknown) => (e as Error).message,
      ),
    )
    expect(outcome, 'tenant 2 fetched tenant 1 cursor').not.toEqual(['alice-1', 'bob-1'])
  })

  it('a client kept after release is refused', async () => {
    let kept: pg.PoolClient | undefined
    await runWithTenant('1', async () => {
      kept = await pool.connect()
      kept.release()
    })
    const outcome = await runWithTenant('2', async () => {
      const c = await pool.connect()
      try {
        await c.query('begin')
        await c.query('select 1')
        const stolen = await runWithTenant('1', async () =>
          (async () => kept!.query('select name from accounts'))().then(
            (r) => names((r as pg.QueryResult).rows),
            (e: unknown) => (e as Error).message,
          ),
        )
        await c.query('commit')
        return stolen
      } finally {
        c.release()
      }
    })
    expect(outcome).not.toEqual(['alice-2', 'carol-2'])
  })

  it('session set_config(false) in raw SQL does not reach a foreign query on the inner pool', async () => {
    await runWithTenant('1', () =>
      pool.query("select set_config('rowtenancy.tenant_id', '2', false)"),
    )
    const { rows } = await pool.inner.query('select name from accounts')
    expect(names(rows)).toEqual([])
  })

  it('an ORM-style UPDATE of pg_settings gets the reset: its session search_path stays behind for no one', async () => {
    // `update pg_settings ...` reads like plain CRUD, but the view's rule calls
    // set_config(name, setting, false): judged session-neutral, it skipped the reset.
    for (const text of [
      `update pg_settings set setting = 'pg_catalog' where name = 'search_path'`,
      `update "pg_catalog"."pg_settings" set "setting" = $1 where "name" = $2`,
    ]) {
      const values = text.includes('$1') ? ['pg_catalog', 'search_path'] : undefined
      await runWithTenant('1', () => pool.query(text, values))
      const { rows } = await runWithTenant('2', () => pool.query('show search_path'))
      expect(rows[0].search_path).not.toBe('pg_catalog')
    }
  })
})
