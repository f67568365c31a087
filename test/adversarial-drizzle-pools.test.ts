import { sql } from 'drizzle-orm'
import { bigint, pgTable, text } from 'drizzle-orm/pg-core'
import pg from 'pg'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import {
  type TenantDrizzle,
  tenantColumn,
  tenantDrizzle,
  tenantPrimaryKey,
} from '../src/drizzle/index.js'
import { runWithTenant } from '../src/entries/index.js'
import { type OrmFixture, setupOrmFixture } from './orm-fixture.js'

/**
 * Hostile code on the pools ORMs use: a Drizzle transaction handle kept after its end, raw
 * session-level settings, a transaction the tenant pool did not see begin, and the audited
 * cross-tenant pool's checked-out clients (cursor objects, a client kept after release).
 */
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
  fx = await setupOrmFixture('adv_drizzle_pools')
  db = tenantDrizzle(fx.tenancy, { schema })
})
afterAll(() => fx.close())
beforeEach(() => fx.reseed())

const names = (rows: readonly { name?: unknown }[]) => rows.map((r) => r.name).sort()
async function noTenantNames(): Promise<unknown[]> {
  return names(await db.select({ name: accounts.name }).from(accounts))
}

describe('drizzle', () => {
  it('a transaction handle kept after the transaction runs nothing in the next checkout', async () => {
    let kept: any
    await runWithTenant('1', () =>
      db.transaction(async (tx) => {
        kept = tx
        await tx.select().from(accounts)
      }),
    )
    // tenant 2 opens a transaction on the single connection; the kept tx is used meanwhile
    const seen: unknown[] = []
    await runWithTenant('2', () =>
      db.transaction(async (tx2) => {
        await tx2.select().from(accounts)
        const r = await kept
          .select({ name: accounts.name })
          .from(accounts)
          .then(
            (rows: any[]) => rows,
            (e: Error) => `ERR ${e.message}`,
          )
        seen.push(r)
        await kept
          .execute(sql`update accounts set name = name || '-pwned'`)
          .catch((e: Error) => seen.push(`ERR ${e.message}`))
        return r
      }),
    )
    expect(JSON.stringify(seen)).not.toMatch(/b1/)
    expect((await fx.allAccounts()).map((r) => r.name).join(',')).not.toMatch(/pwned/)
  })

  it('raw session-level set_config is gone at the next no-tenant checkout', async () => {
    await runWithTenant('1', () =>
      db.execute(sql`select set_config('rowtenancy.tenant_id', '2', false)`),
    )
    expect(await noTenantNames()).toEqual([])
  })

  it('set_config through $client.inner (the raw runtime pool) is reset before rowtenancy work', async () => {
    await (db.$client as any).inner.query(`select set_config('rowtenancy.tenant_id', '2', false)`)
    expect(await noTenantNames()).toEqual([])
  })

  it('a BEGIN sent as a Submittable: the lone statements after it are refused until it ends', async () => {
    const client: pg.PoolClient = await db.$client.connect()
    try {
      await new Promise<void>((resolve, reject) => {
        const q = client.query(new pg.Query('begin') as any) as any
        q.on('end', () => resolve())
        q.on('error', reject)
      })
      for (const tenant of ['1', '2', undefined]) {
        const run = () => client.query('select name from accounts')
        await expect(tenant ? runWithTenant(tenant, run) : run()).rejects.toThrow(
          /did not see begin/,
        )
      }
      await client.query('rollback')
      expect(
        names((await runWithTenant('2', () => client.query('select name from accounts'))).rows),
      ).toEqual(['b1'])
      expect(names((await client.query('select name from accounts')).rows)).toEqual([])
    } finally {
      client.release()
    }
    expect(await noTenantNames()).toEqual([])
  })

  it('allObjects: a cursor or stream object on a checked-out audited client is refused (it would go unrecorded)', async () => {
    const admin = db.allObjects('adversarial submittable audit')
    const client = await admin.$client.connect()
    try {
      expect(() => client.query(new pg.Query('select name from accounts') as any)).toThrow(
        /runs no cursor or stream objects/,
      )
    } finally {
      client.release()
    }
  })

  it('allObjects: a raw begin ... rollback around a read does not undo its record (pool and checked-out client)', async () => {
    // The records went into the audited statement's own connection: inside the transaction
    // the caller opened (a lone BEGIN through the pool, or a multi-statement text), so its
    // ROLLBACK took them back, and the cross-tenant read went unrecorded.
    const reason = 'adversarial audit rollback'
    const admin = db.allObjects(reason)
    await admin.execute(sql`begin`)
    const read = await admin.select({ name: accounts.name }).from(accounts)
    expect(read.length).toBeGreaterThan(0)
    await admin.execute(sql`rollback`)
    const client = await admin.$client.connect()
    try {
      await client.query('select 1; begin')
      await client.query('select name from accounts')
      await client.query('rollback')
    } finally {
      client.release()
    }
    const statements = (await fx.auditRows(reason)).map((r) => r.statement)
    expect(statements.filter((s) => /from "?accounts"?/.test(s))).toHaveLength(2)
  })

  it('allObjects: a read behind transaction control in one text is recorded (checked-out client)', async () => {
    // BEGIN, COMMIT, SAVEPOINT, SET TRANSACTION ... are not recorded on their own; a text that
    // starts with one but goes on with a read ran unrecorded.
    const reason = 'adversarial audit control prefix'
    const admin = db.allObjects(reason)
    const client = await admin.$client.connect()
    try {
      await client.query('begin; select name from accounts')
      await client.query('savepoint a; select name from accounts')
      await client.query('rollback to savepoint a; select name from accounts')
      await client.query('release savepoint a; select name from accounts')
      await client.query('set transaction read only; select name from accounts').catch(() => {})
      await client.query('commit; select name from accounts')
    } finally {
      client.release()
    }
    const statements = (await fx.auditRows(reason)).map((r) => r.statement)
    expect(statements.filter((s) => /from "?accounts"?/.test(s))).toHaveLength(6)
  })

  it('allObjects: a client kept after release runs nothing on the admin pool', async () => {
    const reason = 'adversarial kept audited client'
    const admin = db.allObjects(reason)
    const client = await admin.$client.connect()
    client.release()
    const out = await client.query('select count(*)::int as n from accounts').then(
      (r) => r.rows,
      (e: Error) => `ERR ${e.message}`,
    )
    expect(typeof out === 'string', `statement ran after release: ${JSON.stringify(out)}`).toBe(
      true,
    )
  })
})

/** pg's own query called on a client view. */
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
    expect(typeof out === 'string', `statement ran after release: ${JSON.stringify(out)}`).toBe(
      true,
    )
  })
})
