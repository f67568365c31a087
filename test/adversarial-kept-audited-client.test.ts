/**
 * The audited cross-tenant pool's client view guards `query` as a property only: pg.Client's
 * prototype query with the view as `this` runs on the owner's connection with no audit
 * record, during the checkout and after release (from any tenant's context later).
 */
import { bigint, pgTable, text } from 'drizzle-orm/pg-core'
import type pg from 'pg'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import {
  type TenantDrizzle,
  tenantColumn,
  tenantDrizzle,
  tenantPrimaryKey,
} from '../src/drizzle/index.js'
import { runWithTenant } from '../src/entries/index.js'
import { type OrmFixture, setupOrmFixture } from './orm-fixture.js'

const accounts = pgTable(
  'accounts',
  {
    tenantId: tenantColumn(),
    id: bigint('id', { mode: 'number' }).notNull(),
    name: text('name').notNull(),
  },
  (t) => [tenantPrimaryKey(t.tenantId, t.id)],
)
const schema = { accounts }
let fx: OrmFixture
let db: TenantDrizzle<typeof schema>
beforeAll(async () => {
  fx = await setupOrmFixture('adversarial_audited')
  db = tenantDrizzle(fx.tenancy, { schema })
})
afterAll(() => fx.close())
beforeEach(() => fx.reseed())

const rawQuery = async (c: pg.PoolClient, text: string) =>
  (Object.getPrototypeOf(c).query as (t: string) => Promise<pg.QueryResult>).call(c, text)

describe('audited client, prototype query', () => {
  it("after release, from tenant 1 context: pg's own query on the kept audited client is refused", async () => {
    const reason = 'adversarial kept audited client'
    const admin = db.allObjects(reason)
    const client = await admin.$client.connect()
    client.release()
    const out = await runWithTenant('1', () =>
      rawQuery(client, 'select name, tenant_id::text from accounts order by 2, 1').then(
        (r) => r.rows,
        (e: Error) => `ERR ${e.message}`,
      ),
    )
    const _audit = await fx.auditRows(reason)
    expect(typeof out === 'string', `statement ran after release: ${JSON.stringify(out)}`).toBe(
      true,
    )
  })
})
