import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { describe, expect, it } from 'vitest'
import { installAuditLog } from '../src/audit/index.js'
import { runWithTenant } from '../src/entries/index.js'
import { enableRls } from '../src/schema/rls-apply.js'
import { createTenancy, type Tenancy } from '../src/tenancy/index.js'
import { installTenantTables } from '../src/tenants/index.js'
import { createTestDatabase, serverUrl, type TestDatabase, urlFor } from './helpers/db.js'

/**
 * The tables every ORM suite uses: `accounts` and `notes` (tenant-aware,
 * composite keys, a tenant-paired foreign key), written by our own DDL.
 */
export const ORM_DDL = `
create table accounts (
  tenant_id bigint not null references tenants (id),
  id bigint not null,
  name text not null,
  primary key (tenant_id, id)
);
create table notes (
  tenant_id bigint not null references tenants (id),
  id bigint not null,
  account_id bigint not null,
  body text not null,
  primary key (tenant_id, id),
  foreign key (tenant_id, account_id) references accounts (tenant_id, id)
);
`

/** Two tenants whose ids overlap: both have account 1 and note 1. */
const SEED = `
delete from notes; delete from accounts;
insert into accounts (tenant_id, id, name) values (1, 1, 'a1'), (1, 2, 'a2'), (2, 1, 'b1');
insert into notes (tenant_id, id, account_id, body) values (1, 1, 1, 'n-a1'), (2, 1, 1, 'n-b1');
`

/**
 * A database with the ORM tables under RLS, seeded for two tenants, a runtime
 * role (owns nothing, no BYPASSRLS), the audit log, and a tenancy whose
 * runtime pool holds ONE connection (so pool reuse is tested on every step).
 */
export interface OrmFixture {
  readonly db: TestDatabase
  readonly runtimeUrl: string
  /** Runtime pool of max 1 connection, owned by the tenancy. */
  readonly tenancy: Tenancy
  /** Puts the seed rows back. */
  reseed(): Promise<void>
  /** Rows of `accounts` as the owner sees them, ordered. */
  allAccounts(): Promise<{ tenant_id: string; id: string; name: string }[]>
  /** Audit rows with `reason`. */
  auditRows(reason: string): Promise<{ source: string; statement: string }[]>
  close(): Promise<void>
}

export async function setupOrmFixture(label: string): Promise<OrmFixture> {
  const db = await createTestDatabase(label)
  await installTenantTables(db.pool, { idType: 'bigint' })
  await db.pool.query(
    `insert into tenants (id, slug, name) values (1, 'one', 'One'), (2, 'two', 'Two')`,
  )
  await db.pool.query(ORM_DDL)
  await db.pool.query(SEED)
  await enableRls(db.pool, [{ name: 'accounts' }, { name: 'notes' }])
  await installAuditLog(db.pool)
  const role = `rt_orm_${randomBytes(4).toString('hex')}`
  await db.pool.query(`create role ${role} login password 'app' nosuperuser nobypassrls`)
  await db.pool.query(`grant usage on schema public to ${role}`)
  await db.pool.query(`grant select, insert, update, delete on accounts, notes, tenants to ${role}`)
  const url = new URL(urlFor(db.name))
  url.username = role
  url.password = 'app'
  const runtimeUrl = url.toString()
  const tenancy = createTenancy({
    pool: new pg.Pool({ connectionString: runtimeUrl, max: 1 }),
    adminPool: new pg.Pool({ connectionString: db.url, max: 2 }),
    tables: ['accounts', 'notes'],
    audit: { actor: 'orm-test' },
  })
  return {
    db,
    runtimeUrl,
    tenancy,
    async reseed() {
      await db.pool.query(SEED)
    },
    async allAccounts() {
      const { rows } = await db.pool.query(
        'select tenant_id, id, name from accounts order by tenant_id, id',
      )
      return rows
    },
    async auditRows(reason) {
      const { rows } = await db.pool.query(
        'select source, statement from audit_log where reason = $1 order by id',
        [reason],
      )
      return rows
    },
    async close() {
      await tenancy.destroy().catch(() => {})
      await db.drop()
      const admin = new pg.Client({ connectionString: serverUrl() })
      await admin.connect()
      try {
        await admin.query(`drop role if exists ${role}`)
      } finally {
        await admin.end()
      }
    },
  }
}

/** One account as an ORM returns it (ids as strings or numbers). */
export interface AccountRow {
  readonly id: string | number | bigint
  readonly name: string
}

/**
 * What the shared isolation scenario asks of one ORM on the tenant pool. Every
 * call runs in the caller's tenant context (or none).
 */
export interface OrmHarness {
  /** Accounts visible now, through the ORM's query builder / model API. */
  listAccounts(): Promise<AccountRow[]>
  /** `select count(*) from accounts` through the ORM's raw SQL door. */
  rawCount(): Promise<number>
  /** Inserts an account (the tenant column given explicitly). */
  insertAccount(tenantId: number, id: number, name: string): Promise<void>
  /** Renames account `id`; returns the number of rows updated. */
  renameAccount(id: number, name: string): Promise<number>
  /** In one ORM transaction: insert account `id`, then a statement that fails (duplicate key). */
  failingTransaction(id: number): Promise<void>
  /** In one ORM transaction: insert a note for account `id`, return the notes seen in it. */
  transactionInsertNote(noteId: number, accountId: number): Promise<number>
  /** Accounts of every tenant through the audited cross-tenant handle with `reason`. */
  allObjectsAccounts(reason: string): Promise<AccountRow[]>
  /** The same listing on a harness whose pool has `requireTenant: true`. */
  listAccountsRequiringTenant(): Promise<AccountRow[]>
}

/** The messages of a rejection and its causes (ORMs wrap driver errors), joined. */
async function failure(promise: Promise<unknown>): Promise<string> {
  try {
    await promise
  } catch (err) {
    const parts: string[] = []
    for (let e: unknown = err; e && parts.length < 5; e = (e as { cause?: unknown }).cause) {
      parts.push(String((e as { message?: unknown }).message ?? e))
    }
    return parts.join(' <- ')
  }
  throw new Error('expected a failure, but the call succeeded')
}

const names = (rows: readonly AccountRow[]) => rows.map((r) => r.name).sort()

/**
 * The isolation scenario of the Kysely suite, for one ORM: two tenants with
 * overlapping ids, reads, raw SQL, writes, a foreign write refused by WITH
 * CHECK, a transaction with a failing statement, reuse of a pool of one, no
 * tenant, and the audited cross-tenant handle.
 */
export function ormIsolationScenario(orm: string, get: () => { fx: OrmFixture; h: OrmHarness }) {
  describe(`${orm} on the tenant pool: isolation scenario`, () => {
    it('reads: each tenant sees its own rows, overlapping ids included', async () => {
      const { h, fx } = get()
      await fx.reseed()
      expect(names(await runWithTenant(1, () => h.listAccounts()))).toEqual(['a1', 'a2'])
      expect(names(await runWithTenant(2, () => h.listAccounts()))).toEqual(['b1'])
      expect(await runWithTenant(1, () => h.rawCount())).toBe(2)
      expect(await runWithTenant(2, () => h.rawCount())).toBe(1)
    })

    it("writes: an insert and an update touch only the bound tenant's rows", async () => {
      const { h, fx } = get()
      await fx.reseed()
      await runWithTenant(1, () => h.insertAccount(1, 3, 'a3'))
      // id 1 exists for both tenants: only tenant 2's row changes
      expect(await runWithTenant(2, () => h.renameAccount(1, 'b1-renamed'))).toBe(1)
      expect(await fx.allAccounts()).toEqual([
        { tenant_id: '1', id: '1', name: 'a1' },
        { tenant_id: '1', id: '2', name: 'a2' },
        { tenant_id: '1', id: '3', name: 'a3' },
        { tenant_id: '2', id: '1', name: 'b1-renamed' },
      ])
    })

    it("a foreign write (another tenant's id) is refused by WITH CHECK", async () => {
      const { h, fx } = get()
      await fx.reseed()
      const before = await fx.allAccounts()
      expect(await failure(runWithTenant(1, () => h.insertAccount(2, 9, 'intruder')))).toMatch(
        /row-level security/,
      )
      expect(await fx.allAccounts()).toEqual(before)
    })

    it('a transaction with a failing statement rolls back whole; the pool of one serves on', async () => {
      const { h, fx } = get()
      await fx.reseed()
      const before = await fx.allAccounts()
      await expect(runWithTenant(1, () => h.failingTransaction(7))).rejects.toThrow()
      expect(await fx.allAccounts()).toEqual(before)
      expect(names(await runWithTenant(2, () => h.listAccounts()))).toEqual(['b1'])
      // the transaction is bound once and sees its own tenant's rows
      expect(await runWithTenant(2, () => h.transactionInsertNote(5, 1))).toBe(2)
    })

    it('pool reuse on a pool of one: alternating and concurrent tenants keep their rows', async () => {
      const { h, fx } = get()
      await fx.reseed()
      for (const t of [1, 2, 1, 2]) {
        expect(names(await runWithTenant(t, () => h.listAccounts()))).toEqual(
          t === 1 ? ['a1', 'a2'] : ['b1'],
        )
      }
      const results = await Promise.all(
        [1, 2, 1, 2, 1, 2].map((t) => runWithTenant(t, () => h.listAccounts())),
      )
      expect(results.map(names)).toEqual([
        ['a1', 'a2'],
        ['b1'],
        ['a1', 'a2'],
        ['b1'],
        ['a1', 'a2'],
        ['b1'],
      ])
      // after all that, the one connection carries no tenant
      expect(await h.listAccounts()).toEqual([])
      const { rows } = await fx.tenancy.options.pool.query(
        "select coalesce(current_setting('rowtenancy.tenant_id', true), '') as bound",
      )
      expect(rows).toEqual([{ bound: '' }])
    })

    it('no tenant: statements run unbound (no rows); requireTenant: MissingTenantError', async () => {
      const { h, fx } = get()
      await fx.reseed()
      expect(await h.listAccounts()).toEqual([])
      expect(await h.rawCount()).toBe(0)
      expect(await failure(h.insertAccount(1, 8, 'nobody'))).toMatch(/row-level security/)
      // (ORMs may wrap it: DrizzleQueryError, PrismaClientKnownRequestError ... with it as cause)
      expect(await failure(h.listAccountsRequiringTenant())).toMatch(
        /needs a tenant, but none is set/,
      )
      expect(names(await runWithTenant(1, () => h.listAccountsRequiringTenant()))).toEqual([
        'a1',
        'a2',
      ])
    })

    it('the audited handle reads every tenant and writes an audit record', async () => {
      const { h, fx } = get()
      await fx.reseed()
      const reason = `${orm} report ${randomBytes(3).toString('hex')}`
      expect(names(await h.allObjectsAccounts(reason))).toEqual(['a1', 'a2', 'b1'])
      const audit = await fx.auditRows(reason)
      expect(audit.length).toBeGreaterThan(0)
      expect(audit.every((r) => r.source === 'allObjects')).toBe(true)
      expect(audit.some((r) => /accounts/.test(r.statement))).toBe(true)
    })
  })
}
