/**
 * Hostile code: the directory is made read-only by grantRuntimeRole only for tables present
 * then. tenant move's installPlacements creates tenant_placements later (after init), where
 * default privileges give the runtime role DML on it: installPlacements revokes it.
 */
import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { installPlacements } from '../src/entries/index.js'
import { grantRuntimeRole } from '../src/schema/roles.js'
import { quoteIdent } from '../src/sql/quote.js'
import { installTenantTables, TenantStore } from '../src/tenants/index.js'
import { createTestDatabase, dropRoles, type TestDatabase } from './helpers/db.js'

let fx: TestDatabase
const app = `rt_advd_${randomBytes(3).toString('hex')}`
let ids: string[] = []
beforeAll(async () => {
  fx = await createTestDatabase('adv_dir_later')
  await installTenantTables(fx.pool)
  const store = new TenantStore({ db: fx.pool, ttlMs: 1 })
  ids = [
    (await store.create({ slug: 'one', name: '1' })).id,
    (await store.create({ slug: 'two', name: '2' })).id,
  ]
  await fx.pool.query(`create role ${quoteIdent(app)} login`)
  await grantRuntimeRole(fx.pool, { role: app })
  await installPlacements(fx.pool) // later: first tenant move
}, 60_000)
afterAll(async () => {
  await fx?.drop()
  await dropRoles([app])
})

async function asRuntime(sqlText: string, values: unknown[] = []) {
  const c = await fx.pool.connect()
  try {
    await c.query('begin')
    await c.query(`set local role ${quoteIdent(app)}`)
    await c.query(`select set_config('rowtenancy.tenant_id', $1, true)`, [ids[0]])
    const r = await c.query(sqlText, values)
    await c.query('commit')
    return r.rowCount
  } catch (e) {
    await c.query('rollback').catch(() => {})
    return e as Error
  } finally {
    c.release()
  }
}

describe('tenant_placements made after grantRuntimeRole', () => {
  it('tenant 1 code cannot move tenant 2 placement', async () => {
    await asRuntime(
      `insert into tenant_placements (tenant_id, database) values ($1, 'shard_evil')`,
      [ids[1]],
    )
    const { rows } = await fx.pool.query('select tenant_id::text, database from tenant_placements')
    expect(rows).toEqual([])
  })
  it('sanity: tenants itself stays read-only', async () => {
    const r = await asRuntime(`update tenants set status = status where id = $1`, [ids[1]])
    expect(r).toBeInstanceOf(Error)
  })
})
