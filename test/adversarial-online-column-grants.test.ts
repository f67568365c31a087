/**
 * A non-invoker view of a legacy schema granted to PUBLIC on one column only
 * (`grant select (name) on acme.author_names to public`): the online migration refuses a schema
 * whose owner-run objects the runtime role still reaches through PUBLIC, but asked
 * has_table_privilege, which a column grant does not satisfy. The runtime role, bound to no
 * tenant, read every author's name of the schema through it.
 */
import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { migrateOnline } from '../src/migrate/online/index.js'
import { quoteIdent } from '../src/sql/quote.js'
import { createTestDatabase, dropRoles, type TestDatabase } from './helpers/db.js'
import { buildLegacyFixture } from './helpers/legacy-fixture.js'

let fx: TestDatabase
const app = `adv_rtc_${randomBytes(3).toString('hex')}`

beforeAll(async () => {
  fx = await createTestDatabase('adv_online_cols')
  await buildLegacyFixture(fx.pool, { rows: 3, drift: false, hostile: false })
  await fx.pool.query(`create role ${quoteIdent(app)} login`)
  await fx.pool.query('create view acme.author_names as select * from acme.author')
  await fx.pool.query('grant select (name) on acme.author_names to public')
}, 120_000)

afterAll(async () => {
  await fx?.drop()
  await dropRoles([app])
})

it('an owner view reachable through a PUBLIC column grant makes the schema refused', async () => {
  await expect(
    migrateOnline({ db: fx.pool, all: true, prepareOnly: true, grantTo: app }),
  ).rejects.toThrow(/would reach acme\.author_names/)
  const c = await fx.pool.connect()
  try {
    await c.query('begin')
    await c.query(`set local role ${quoteIdent(app)}`)
    const r = await c.query('select name from acme.author_names').catch((e: Error) => e)
    expect(r instanceof Error ? [] : r.rows).toEqual([])
  } finally {
    await c.query('rollback').catch(() => {})
    c.release()
  }
})
