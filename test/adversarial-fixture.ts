import { randomBytes } from 'node:crypto'
import { type Generated, Kysely, PostgresDialect } from 'kysely'
import pg from 'pg'
import { installAuditLog } from '../src/audit/index.js'
import { createTenancy, type Tenancy } from '../src/entries/index.js'
import { TenantPlugin, type TenantPluginOptions } from '../src/kysely/index.js'
import { enableRls } from '../src/schema/rls-apply.js'
import { grantRuntimeRole } from '../src/schema/roles.js'
import { createTestDatabase, serverUrl, type TestDatabase } from './helpers/db.js'
import { createFinanceTables, type FinanceDB, seedFinance, TABLES } from './kysely-fixture.js'

/** The finance tables plus `handles`, whose `handle` is unique across tenants (an upsert pitfall). */
export interface AttackDB extends FinanceDB {
  handles: { tenant_id: Generated<string>; id: string; handle: string; owner: string }
}

export const ATTACK_TABLES = [...TABLES, 'handles'] as const

/**
 * The two ways the suite runs every attack: the plugin alone (connected as the
 * table owner, a superuser here, so no RLS applies) and RLS mode (the runtime
 * role under forced RLS, plus the plugin, through `createTenancy`).
 */
export interface AttackMode {
  readonly name: 'plugin alone' | 'RLS'
  readonly db: Kysely<AttackDB>
  /** The tenancy (RLS mode only). */
  readonly tenancy?: Tenancy
  /** Whether cross-tenant work through this mode writes audit records. */
  readonly audited: boolean
}

export interface AttackFixture {
  readonly tdb: TestDatabase
  readonly role: string
  readonly runtimeUrl: string
  readonly modes: readonly AttackMode[]
  /** A plugin-alone instance with extra plugin options (e.g. strictRaw). */
  pluginAlone(options?: Partial<TenantPluginOptions>): Kysely<AttackDB>
  /** Puts every row back as seeded and empties the audit log. */
  reseed(): Promise<void>
  /** Tenant 2's rows of every tenant-aware table, read as the owner. */
  foreignRows(): Promise<string>
  close(): Promise<void>
}

const HANDLES = `
create table handles (
  tenant_id bigint not null,
  id bigint not null,
  handle text not null unique,
  owner text not null,
  primary key (tenant_id, id)
);`

/** Builds the database (finance tables, `handles`, audit log, RLS, runtime role) and both modes. */
export async function attackFixture(label: string): Promise<AttackFixture> {
  const tdb = await createTestDatabase(label)
  await createFinanceTables(tdb.pool)
  await tdb.pool.query(HANDLES)
  await installAuditLog(tdb.pool)
  await enableRls(
    tdb.pool,
    ATTACK_TABLES.map((name) => ({ name })),
  )
  const role = `rt_adv_${randomBytes(4).toString('hex')}`
  await grantRuntimeRole(tdb.pool, { role })
  await tdb.pool.query(`alter role "${role}" password 'adv'`)
  const url = new URL(tdb.url)
  url.username = role
  url.password = 'adv'
  const runtimeUrl = url.toString()
  const owned: Kysely<AttackDB>[] = []
  const pluginAlone = (options: Partial<TenantPluginOptions> = {}) => {
    const db = new Kysely<AttackDB>({
      dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: tdb.url, max: 3 }) }),
      plugins: [new TenantPlugin({ tables: ATTACK_TABLES, ...options })],
    })
    owned.push(db)
    return db
  }
  const tenancy = createTenancy({
    pool: new pg.Pool({ connectionString: runtimeUrl, max: 4 }),
    adminPool: new pg.Pool({ connectionString: tdb.url, max: 3 }),
    tables: ATTACK_TABLES,
    audit: { table: 'audit_log' },
  })
  const modes: AttackMode[] = [
    { name: 'plugin alone', db: pluginAlone(), audited: false },
    { name: 'RLS', db: tenancy.kysely<AttackDB>(), tenancy, audited: true },
  ]
  const fixture: AttackFixture = {
    tdb,
    role,
    runtimeUrl,
    modes,
    pluginAlone,
    async reseed() {
      await seedFinance(tdb.pool)
      await tdb.pool.query(`truncate handles, audit_log;
        insert into handles (tenant_id, id, handle, owner) values (1, 1, 'one', 'alice-1'), (2, 1, 'two', 'alice-2')`)
    },
    async foreignRows() {
      const { rows } = await tdb.pool.query(
        `select json_build_object(
           'accounts', (select json_agg(a order by id) from accounts a where tenant_id = 2),
           'transactions', (select json_agg(t order by id) from transactions t where tenant_id = 2),
           'handles', (select json_agg(h order by id) from handles h where tenant_id = 2)) as all`,
      )
      return JSON.stringify(rows[0].all)
    },
    async close() {
      await tenancy.destroy()
      await Promise.all(owned.map((db) => db.destroy()))
      await tdb.drop()
      const admin = new pg.Client({ connectionString: serverUrl() })
      await admin.connect()
      try {
        await admin.query(`drop role if exists "${role}"`)
      } finally {
        await admin.end()
      }
    },
  }
  await fixture.reseed()
  return fixture
}

/** Rows or the error an attack ended with. */
export type Outcome = { rows: unknown[]; error?: undefined } | { rows?: undefined; error: unknown }

/** Runs an attack and keeps its rows or its error. */
export async function attempt(fn: () => Promise<unknown>): Promise<Outcome> {
  try {
    const result = await fn()
    const rows = Array.isArray(result)
      ? result
      : ((result as { rows?: unknown[] } | undefined)?.rows ?? [result])
    return { rows }
  } catch (error) {
    return { error }
  }
}

/** The markers of tenant 2's seeded rows: names and amounts no tenant-1 row has. */
export const FOREIGN_MARKERS = ['alice-2', 'carol-2', 'two']

/** Whether any returned row belongs to tenant 2. */
export function leaksForeign(rows: readonly unknown[]): boolean {
  return rows.some((row) => {
    if (row === null || typeof row !== 'object') return false
    const r = row as Record<string, unknown>
    if (r.tenant_id !== undefined && String(r.tenant_id) === '2') return true
    return Object.values(r).some((v) => typeof v === 'string' && FOREIGN_MARKERS.includes(v))
  })
}
