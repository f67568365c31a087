import { generateDrizzleJson, generateMigration } from 'drizzle-kit/api'
import { eq, sql } from 'drizzle-orm'
import { bigint, pgTable, text } from 'drizzle-orm/pg-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  forceRlsSql,
  type TenantDrizzle,
  tenantColumn,
  tenantDrizzle,
  tenantIsolationPolicy,
  tenantPrimaryKey,
} from '../src/drizzle/index.js'
import { rlsSql, runWithTenant } from '../src/entries/index.js'
import {
  type OrmFixture,
  type OrmHarness,
  ormIsolationScenario,
  setupOrmFixture,
} from './orm-fixture.js'

const accounts = pgTable(
  'accounts',
  {
    tenantId: tenantColumn(),
    id: bigint('id', { mode: 'number' }).notNull(),
    name: text('name').notNull(),
  },
  (t) => [tenantPrimaryKey(t.tenantId, t.id), tenantIsolationPolicy()],
)
const notes = pgTable(
  'notes',
  {
    tenantId: tenantColumn(),
    id: bigint('id', { mode: 'number' }).notNull(),
    accountId: bigint('account_id', { mode: 'number' }).notNull(),
    body: text('body').notNull(),
  },
  (t) => [tenantPrimaryKey(t.tenantId, t.id), tenantIsolationPolicy()],
)
const schema = { accounts, notes }

let fx: OrmFixture
let db: TenantDrizzle<typeof schema>
let strict: TenantDrizzle<typeof schema>

beforeAll(async () => {
  fx = await setupOrmFixture('orm_drizzle')
  db = tenantDrizzle(fx.tenancy, { schema })
  strict = tenantDrizzle(fx.tenancy, { schema, requireTenant: true })
})
afterAll(() => fx.close())

const harness: OrmHarness = {
  listAccounts: () => db.select({ id: accounts.id, name: accounts.name }).from(accounts),
  async rawCount() {
    const r = await db.execute<{ n: number }>(sql`select count(*)::int as n from accounts`)
    return r.rows[0]!.n
  },
  async insertAccount(tenantId, id, name) {
    await db.insert(accounts).values({ tenantId, id, name })
  },
  async renameAccount(id, name) {
    const r = await db.update(accounts).set({ name }).where(eq(accounts.id, id))
    return r.rowCount ?? 0
  },
  async failingTransaction(id) {
    await db.transaction(async (tx) => {
      await tx.insert(accounts).values({ id, name: 'in-tx' })
      await tx.insert(accounts).values({ id, name: 'duplicate' })
    })
  },
  transactionInsertNote: (noteId, accountId) =>
    db.transaction(async (tx) => {
      await tx.insert(notes).values({ id: noteId, accountId, body: 'tx-note' })
      const rows = await tx.select().from(notes)
      await tx.delete(notes).where(eq(notes.id, noteId))
      return rows.length
    }),
  allObjectsAccounts: (reason) =>
    db
      .allObjects(reason, { actor: 'auditor' })
      .select({ id: accounts.id, name: accounts.name })
      .from(accounts),
  listAccountsRequiringTenant: () =>
    strict.select({ id: accounts.id, name: accounts.name }).from(accounts),
}

ormIsolationScenario('Drizzle', () => ({ fx, h: harness }))

describe('Drizzle specifics', () => {
  it('tenantColumn fills the current tenant on insert; nested transactions are savepoints', async () => {
    await fx.reseed()
    await runWithTenant(2, () =>
      db.transaction(async (tx) => {
        await tx.insert(accounts).values({ id: 10, name: 'outer' })
        await tx
          .transaction(async (inner) => {
            await inner.insert(accounts).values({ id: 11, name: 'inner' })
            throw new Error('inner fails')
          })
          .catch(() => {})
        // the bind survives the savepoint rollback
        expect((await tx.select().from(accounts)).map((r) => r.name).sort()).toEqual([
          'b1',
          'outer',
        ])
      }),
    )
    expect((await fx.allAccounts()).filter((r) => Number(r.id) >= 10)).toEqual([
      { tenant_id: '2', id: '10', name: 'outer' },
    ])
  })

  it('tenantColumn never rounds a tenant id: one past 2^53, or not an integer, is refused before any SQL', async () => {
    await fx.reseed()
    const before = await fx.allAccounts()
    for (const tenant of ['9007199254740993', 'abc', '1.5']) {
      await expect(
        runWithTenant(tenant, () => db.insert(accounts).values({ id: 20, name: 'rounded' })),
      ).rejects.toMatchObject({ code: 'INVALID_TENANT_ID' })
    }
    await expect(
      runWithTenant('9007199254740993', () =>
        db.insert(accounts).values({ id: 20, name: 'rounded' }),
      ),
    ).rejects.toThrow(/9007199254740993.*safe JS integer/)
    expect(await fx.allAccounts()).toEqual(before)
  })

  it('relational queries (db.query) are bound too', async () => {
    await fx.reseed()
    const rows = await runWithTenant(2, () => db.query.notes.findMany())
    expect(rows).toEqual([{ tenantId: 2, id: 1, accountId: 1, body: 'n-b1' }])
  })

  it('a transaction with an isolation level binds after its BEGIN', async () => {
    await fx.reseed()
    const n = await runWithTenant(1, () =>
      db.transaction(async (tx) => (await tx.select().from(accounts)).length, {
        isolationLevel: 'serializable',
      }),
    )
    expect(n).toBe(2)
  })

  it('drizzle-kit generates exactly the policy `rowtenancy rls` creates (plus ENABLE; FORCE is a custom step)', async () => {
    const statements = await generateMigration(
      generateDrizzleJson({}),
      generateDrizzleJson({ accounts }),
    )
    const norm = (s: string) => s.replace(/;\s*$/, '').replace(/\s+/g, ' ').trim().toLowerCase()
    const kit = statements.map(norm)
    const ours = rlsSql(['accounts'])
    const policy = norm(ours.find((s) => s.startsWith('create policy'))!)
    expect(kit).toContain(policy)
    expect(kit).toContain('alter table "accounts" enable row level security')
    expect(ours).toContain(forceRlsSql('accounts'))
    // the composite key, tenant first
    expect(kit.some((s) => s.includes('primary key("tenant_id","id")'))).toBe(true)
  })
})
