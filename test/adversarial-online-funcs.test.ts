/**
 * Hostile legacy objects: migrateOnline --grant-to gives the runtime role USAGE on each legacy schema. Functions are
 * EXECUTE-able by PUBLIC by default: a SECURITY DEFINER function of the legacy schema (owned by
 * the schema owner) reads the legacy tables as their owner, past the legacy policy. Also a
 * non-invoker view granted to PUBLIC by the legacy app (revoke from the role alone leaves it).
 */
import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { migrateOnline } from '../src/migrate/online/index.js'
import { quoteIdent } from '../src/sql/quote.js'
import { createTestDatabase, dropRoles, type TestDatabase } from './helpers/db.js'
import { buildLegacyFixture } from './helpers/legacy-fixture.js'

let fx: TestDatabase
const app = `adv_rt_${randomBytes(3).toString('hex')}`

beforeAll(async () => {
  fx = await createTestDatabase('adv_online_funcs')
  await buildLegacyFixture(fx.pool, { rows: 3, drift: false, hostile: false })
  await fx.pool.query(`create role ${quoteIdent(app)} login`)
  await fx.pool.query(
    `create function acme.all_authors() returns setof acme.author language sql security definer as 'select * from acme.author'`,
  )
  await fx.pool.query(
    `create function acme.all_authors_inv() returns setof acme.author language sql as 'select * from acme.author'`,
  )
  await fx.pool.query(`create view acme.author_pub as select * from acme.author`)
  await fx.pool.query(`grant select on acme.author_pub to public`)
  await fx.pool.query(
    `create view acme.author_fnv with (security_invoker = true) as select * from acme.all_authors()`,
  )
  // Refused, with what the role would reach and the fix; the tenant stays on its schema.
  await expect(
    migrateOnline({ db: fx.pool, all: true, prepareOnly: true, grantTo: app }),
  ).rejects.toThrow(/would reach acme\.all_authors\(\), acme\.author_pub/)
}, 120_000)

afterAll(async () => {
  await fx?.drop()
  await dropRoles([app])
})

async function asRuntime(sqlText: string) {
  const c = await fx.pool.connect()
  try {
    await c.query('begin')
    await c.query(`set local role ${quoteIdent(app)}`)
    return (await c.query(sqlText)).rows
  } catch (e) {
    return e as Error
  } finally {
    await c.query('rollback').catch(() => {})
    c.release()
  }
}

describe('legacy schema objects that run as their owner, reachable through PUBLIC: the schema is refused, nothing reachable', () => {
  it('sanity: table unbound shows nothing', async () => {
    const r = await asRuntime('select * from acme.author')
    expect(r instanceof Error ? [] : r).toEqual([])
  })
  it('sanity: invoker function unbound shows nothing', async () => {
    const r = await asRuntime('select * from acme.all_authors_inv()')
    expect(r instanceof Error ? [] : r).toEqual([])
  })
  it('security definer function of the legacy schema, unbound: no rows', async () => {
    const r = await asRuntime('select * from acme.all_authors()')
    expect(r instanceof Error ? [] : r).toEqual([])
  })
  it('security_invoker view over a definer function, unbound: no rows', async () => {
    const r = await asRuntime('select * from acme.author_fnv')
    expect(r instanceof Error ? [] : r).toEqual([])
  })
  it('owner view granted to PUBLIC, unbound: no rows', async () => {
    const r = await asRuntime('select * from acme.author_pub')
    expect(r instanceof Error ? [] : r).toEqual([])
  })
})
