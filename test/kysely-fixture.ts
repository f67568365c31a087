import type { Generated, Kysely } from 'kysely'
import pg from 'pg'
import { createTenancy, type Tenancy, type TenancyOptions } from '../src/entries/index.js'
import { distributeOnCitus } from './helpers/citus.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'

/** The finance tables the plugin tests use (snake_case, as in the database). */
export interface FinanceDB {
  currencies: { code: string; name: string }
  accounts: { tenant_id: Generated<string>; id: string; name: string; currency: string | null }
  transactions: {
    tenant_id: Generated<string>
    id: string
    account_id: string
    amount: string
  }
}

/** Tenant-aware tables of the fixture; `currencies` is shared. */
export const TABLES = ['accounts', 'transactions'] as const

const DDL = `
create table currencies (code text primary key, name text not null);
create table accounts (
  tenant_id bigint not null,
  id bigint not null,
  name text not null,
  currency text references currencies (code),
  primary key (tenant_id, id)
);
create table transactions (
  tenant_id bigint not null,
  id bigint not null,
  account_id bigint not null,
  amount numeric not null,
  primary key (tenant_id, id),
  foreign key (tenant_id, account_id) references accounts (tenant_id, id)
);
`

/**
 * Two tenants whose ids overlap on purpose (both have account 1 and
 * transaction 1), so a join that loses the tenant shows up as extra rows.
 */
const SEED = `
truncate transactions, accounts, currencies;
insert into currencies (code, name) values ('EUR', 'Euro'), ('USD', 'US dollar');
insert into accounts (tenant_id, id, name, currency) values
  (1, 1, 'alice-1', 'EUR'), (1, 2, 'bob-1', 'USD'),
  (2, 1, 'alice-2', 'EUR'), (2, 3, 'carol-2', null);
insert into transactions (tenant_id, id, account_id, amount) values
  (1, 1, 1, 10), (1, 2, 1, 20), (1, 3, 2, 5),
  (2, 1, 1, 100), (2, 2, 3, 300);
`

/** Creates the fixture tables. */
export async function createFinanceTables(pool: pg.Pool): Promise<void> {
  await pool.query(DDL)
}

/** Puts the seed rows back (truncate + insert). */
export async function seedFinance(pool: pg.Pool): Promise<void> {
  await pool.query(SEED)
}

/** Every row of a table, unscoped, ordered, for before/after comparisons. */
export async function allRows(
  pool: pg.Pool,
  table: 'accounts' | 'transactions',
): Promise<unknown[]> {
  const { rows } = await pool.query(`select * from ${table} order by tenant_id, id`)
  return rows
}

/**
 * A login role for the runtime pool that owns nothing and has no BYPASSRLS
 * (what the tenant-binding dialect insists on), with DML on the fixture tables
 * and INSERT on the audit log. Returns its connection URL and a drop function.
 */
export async function createRuntimeRole(
  pool: pg.Pool,
  databaseUrl: string,
  label: string,
): Promise<{ url: string; drop(): Promise<void> }> {
  const role = `rt_app_${label}_${Math.random().toString(36).slice(2, 8)}`
  await pool.query(`create role ${role} login password 'app' nosuperuser nobypassrls`)
  await pool.query(`grant usage on schema public to ${role}`)
  await pool.query(`grant select, insert, update, delete on all tables in schema public to ${role}`)
  const url = new URL(databaseUrl)
  url.username = role
  url.password = 'app'
  return {
    url: url.toString(),
    async drop() {
      await pool.query(`drop owned by ${role}`).catch(() => {})
      await pool.query(`drop role if exists ${role}`).catch(() => {})
    },
  }
}

/**
 * The finance tables seeded for two tenants in a database of their own, a
 * runtime role, and a tenancy whose pool is that role (the owner as adminPool).
 * `close()` destroys the tenancy, drops the role and the database.
 *
 * @example
 * ```ts
 * const f = await financeTenancy('exec', { audit: { table: false } })
 * await runWithTenant('1', () => f.db.selectFrom('accounts').selectAll().execute())
 * afterAll(() => f.close())
 * ```
 */
export async function financeTenancy(
  label: string,
  options: {
    audit?: TenancyOptions['audit']
    runtimeMax?: number
    adminApplicationName?: string
    /** Runs on the owner pool after seeding, before the role is made (e.g. installAuditLog). */
    prepare?: (pool: pg.Pool) => Promise<void>
  } = {},
): Promise<{
  tdb: TestDatabase
  role: { url: string; drop(): Promise<void> }
  tenancy: Tenancy
  db: Kysely<FinanceDB>
  close(): Promise<void>
}> {
  const tdb = await createTestDatabase(label)
  await createFinanceTables(tdb.pool)
  await seedFinance(tdb.pool)
  await options.prepare?.(tdb.pool)
  const role = await createRuntimeRole(tdb.pool, tdb.url, label)
  await distributeOnCitus(tdb.pool, new URL(role.url).username, tdb.name)
  // The tenancy gets pools of its own (runtime role + owner), so destroy() leaves the fixture's.
  const tenancy = createTenancy({
    pool: new pg.Pool({ connectionString: role.url, max: options.runtimeMax ?? 4 }),
    adminPool: new pg.Pool({
      connectionString: tdb.url,
      max: 2,
      application_name: options.adminApplicationName,
    }),
    tables: TABLES,
    audit: options.audit ?? { table: false },
  })
  return {
    tdb,
    role,
    tenancy,
    db: tenancy.kysely<FinanceDB>(),
    async close() {
      await tenancy.destroy()
      await role.drop()
      await tdb.drop()
    },
  }
}
