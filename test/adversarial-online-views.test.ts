/**
 * Hostile code: an online migration grants the runtime role every "table" of a
 * legacy schema (grant ... on all tables in schema: views and materialized views
 * included) but guards only relkind r/p with the legacy policy. A view owned by
 * the schema's owner (no security_invoker) or a materialized view shows the
 * legacy tenant's rows to the runtime role with no binding / another tenant.
 */
import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { migrateOnline } from '../src/migrate/online/index.js'
import { quoteIdent } from '../src/sql/quote.js'
import { createTestDatabase, dropRoles, type TestDatabase } from './helpers/db.js'
import { buildLegacyFixture } from './helpers/legacy-fixture.js'

let fx: TestDatabase
const app = `rt_adv_${randomBytes(3).toString('hex')}`

beforeAll(async () => {
  fx = await createTestDatabase('adv_online_views')
  await buildLegacyFixture(fx.pool, { rows: 3, drift: false, hostile: false })
  await fx.pool.query(`create role ${quoteIdent(app)} login`)
  // legacy apps have views and reporting matviews in their tenant schemas
  await fx.pool.query('create view acme.author_v as select * from acme.author')
  await fx.pool.query('create materialized view acme.author_mv as select * from acme.author')
  // security_invoker as PostgreSQL stores it when written t, 'on', 1 (or false)
  await fx.pool.query(`create view acme.author_t with (security_invoker = t) as select * from acme.author;
    create view acme.author_on with (security_invoker = 'on') as select * from acme.author;
    create view acme.author_1 with (security_invoker = 1) as select * from acme.author;
    create view acme.author_false with (security_invoker = false) as select * from acme.author`)
  const report = await migrateOnline({ db: fx.pool, all: true, prepareOnly: true, grantTo: app })
  expect(report.ok).toBe(true)
}, 120_000)

afterAll(async () => {
  await fx?.drop()
  await dropRoles([app])
})

async function asRuntime(bind: (c: import('pg').PoolClient) => Promise<void>, sqlText: string) {
  const c = await fx.pool.connect()
  try {
    await c.query('begin')
    await c.query(`set local role ${quoteIdent(app)}`)
    await bind(c)
    return (await c.query(sqlText)).rows
  } catch (e) {
    return e as Error
  } finally {
    await c.query('rollback').catch(() => {})
    c.release()
  }
}

describe('legacy views during hybrid serving', () => {
  it('sanity: the table itself shows nothing unbound', async () => {
    const rows = await asRuntime(async () => {}, 'select * from acme.author')
    expect(rows).toEqual([])
  })
  it("a view in another tenant's legacy schema, no binding: no rows", async () => {
    const rows = await asRuntime(async () => {}, 'select * from acme.author_v')
    expect(rows instanceof Error ? [] : rows).toEqual([])
  })
  it("a view in another tenant's legacy schema, bound to globex via rowtenancy_enter: no rows", async () => {
    const { rows: t } = await fx.pool.query(
      "select tenant_id::text as id from rowtenancy_serving where schema_name = 'globex'",
    )
    const rows = await asRuntime(async (c) => {
      await c.query('select public.rowtenancy_enter($1, null)', [t[0].id])
    }, 'select * from acme.author_v')
    expect(rows instanceof Error ? [] : rows).toEqual([])
  })
  it("a materialized view in another tenant's legacy schema: no rows", async () => {
    const rows = await asRuntime(async () => {}, 'select * from acme.author_mv')
    expect(rows instanceof Error ? [] : rows).toEqual([])
  })
})

describe('security_invoker read as PostgreSQL reads a boolean', () => {
  it('the runtime role keeps the views written t, on, 1 (they apply the policy), not the one written false', async () => {
    const { rows } = await fx.pool.query(
      `select v, pg_catalog.has_table_privilege($1::text, v, 'SELECT') as kept
         from unnest(array['acme.author_t', 'acme.author_on', 'acme.author_1', 'acme.author_false']) v order by 1`,
      [app],
    )
    expect(rows).toEqual([
      { v: 'acme.author_1', kept: true },
      { v: 'acme.author_false', kept: false },
      { v: 'acme.author_on', kept: true },
      { v: 'acme.author_t', kept: true },
    ])
    const unbound = await asRuntime(async () => {}, 'select * from acme.author_t')
    expect(unbound).toEqual([])
  })
})
