import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { generateLegacy } from '../../examples/finance/legacy/generate.js'
import { migrate } from '../../src/entries/migrate.js'
import { applyTenantSchema } from '../../src/entries/schema.js'
import { grantRuntimeRole } from '../../src/schema/roles.js'
import { quoteIdent, quoteLiteral } from '../../src/sql/quote.js'
import { installTenantTables } from '../../src/tenants/index.js'

/**
 * One legacy tenant as the benchmarks use it: id, schema, and how many
 * accounts it has (ids 1..accounts in both layouts: the migration keeps ids).
 *
 * @example
 * ```ts
 * const t: BenchTenant = { id: 1, schema: 'tenant_acme', accounts: 40 }
 * ```
 */
export interface BenchTenant {
  readonly id: number
  readonly schema: string
  readonly accounts: number
}

/**
 * Catalog entries and bytes on disk that each layout adds to a fresh database.
 *
 * @example
 * ```ts
 * const c: LayoutFootprint = { classes: 20_000, bytes: 250_000_000 }
 * ```
 */
export interface LayoutFootprint {
  /** `pg_class` rows the layout added (tables, indexes, sequences, TOAST). */
  readonly classes: number
  /** Bytes on disk the layout added. */
  readonly bytes: number
}

/**
 * A database holding the same data twice: as one schema per tenant (the legacy
 * generator) and as shared tables with RLS (`schema generate` + the migration).
 *
 * @example
 * ```ts
 * const built = await buildLayouts(adminUrl, { tenants: 100, scale: 0.05, seed: 1 })
 * await built.ownerPool.query('select count(*) from finance_transaction')
 * await built.drop()
 * ```
 */
export interface BuiltLayouts {
  readonly database: string
  readonly tenants: readonly BenchTenant[]
  readonly rows: { users: number; accounts: number; transactions: number }
  /** The owner (superuser) pool: DDL and cross-tenant reports. */
  readonly ownerPool: pg.Pool
  /** The runtime role's URL: no owner, no BYPASSRLS; RLS binds it. */
  readonly runtimeUrl: string
  readonly footprint: { schema: LayoutFootprint; row: LayoutFootprint }
  /** Milliseconds: the legacy generator, and the migration (copy + verify) of every tenant. */
  readonly build: { generateMs: number; migrateMs: number; migratedRows: number }
  drop(): Promise<void>
}

/**
 * Options of {@link buildLayouts}.
 *
 * @example
 * ```ts
 * const o: BuildOptions = { tenants: 1000, scale: 0.05, seed: 1 }
 * ```
 */
export interface BuildOptions {
  readonly tenants: number
  /** Row-count multiplier of the legacy generator. */
  readonly scale: number
  readonly seed: number
  readonly onProgress?: (line: string) => void
}

/** The tables of one legacy tenant schema. @internal */
const LEGACY_TABLES = ['auth_user', 'auth_membership', 'finance_account', 'finance_transaction']

/** @internal */
function urlFor(base: string, database: string, user?: { name: string; password: string }): string {
  const url = new URL(base)
  url.pathname = `/${database}`
  if (user) {
    url.username = user.name
    url.password = user.password
  }
  return url.toString()
}

/** @internal */
async function onAdmin<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return await fn(client)
  } finally {
    await client.end()
  }
}

/** @internal */
async function catalogCount(pool: pg.Pool): Promise<number> {
  const { rows } = await pool.query('select count(*)::int as n from pg_class')
  return rows[0].n
}

/** @internal */
async function databaseBytes(pool: pg.Pool): Promise<number> {
  const { rows } = await pool.query('select pg_database_size(current_database())::bigint as b')
  return Number(rows[0].b)
}

/**
 * Builds both layouts of the same data in a fresh database on the server at
 * `adminUrl`: the legacy generator writes one schema per tenant; `installTenantTables`
 * and `applyTenantSchema` (the `schema generate --apply` library call, RLS on)
 * create the shared tables from the first tenant's schema; the migration copies
 * every tenant. A runtime role (LOGIN, no BYPASSRLS, owns nothing) gets DML
 * grants on both layouts, so both request paths run as the same role.
 *
 * Footprints are deltas: the schema layout is what the generator added to the
 * fresh database (catalog rows, `pg_database_size`); the row layout is what
 * the tenants tables and the generated shared tables added to `pg_class`, and
 * their `pg_total_relation_size` once filled.
 *
 * @example
 * ```ts
 * const built = await buildLayouts('postgres://postgres@127.0.0.1/postgres', { tenants: 100, scale: 0.05, seed: 1 })
 * ```
 */
export async function buildLayouts(adminUrl: string, options: BuildOptions): Promise<BuiltLayouts> {
  const say = options.onProgress ?? (() => {})
  const database = `rowtenancy_bench_${options.tenants}_${randomBytes(3).toString('hex')}`
  const role = `rowtenancy_bench_rt_${randomBytes(3).toString('hex')}`
  const password = randomBytes(12).toString('hex')
  await onAdmin(adminUrl, (c) => c.query(`create database ${quoteIdent(database)}`))
  const ownerPool = new pg.Pool({ connectionString: urlFor(adminUrl, database), max: 12 })
  const drop = async () => {
    await ownerPool.end().catch(() => {})
    await onAdmin(adminUrl, async (c) => {
      await c.query(`drop database if exists ${quoteIdent(database)} with (force)`)
      await c.query(`drop role if exists ${quoteIdent(role)}`)
    })
  }
  try {
    const classes0 = await catalogCount(ownerPool)
    const bytes0 = await databaseBytes(ownerPool)
    say(`generating ${options.tenants} tenant schemas`)
    const legacy = await generateLegacy(ownerPool, {
      tenants: options.tenants,
      seed: options.seed,
      scale: options.scale,
      concurrency: 4,
    })
    const classes1 = await catalogCount(ownerPool)
    const bytes1 = await databaseBytes(ownerPool)

    say('creating the shared tables (schema generate, RLS on)')
    await installTenantTables(ownerPool, { idType: 'bigint' })
    const template = legacy.tenants[0]!.schema
    await applyTenantSchema(ownerPool, { fromSchema: template, tenantIdType: 'bigint' })
    const classes2 = await catalogCount(ownerPool)

    say('granting the runtime role')
    await grantRuntimeRole(ownerPool, { role, schemas: ['public'] })
    await ownerPool.query(`alter role ${quoteIdent(role)} password ${quoteLiteral(password)}`)
    // pg_backend_memory_contexts (the memory probe) needs pg_read_all_stats.
    await ownerPool.query(`grant pg_read_all_stats to ${quoteIdent(role)}`)
    // Explicit table lists: GRANT ... ON ALL TABLES IN SCHEMA grows quadratically with schemas.
    // Identity columns need no sequence grant for INSERT.
    const tables = legacy.tenants.flatMap((t) =>
      LEGACY_TABLES.map((name) => `${quoteIdent(t.schema)}.${quoteIdent(name)}`),
    )
    for (let i = 0; i < legacy.tenants.length; i += 500) {
      const list = legacy.tenants
        .slice(i, i + 500)
        .map((t) => quoteIdent(t.schema))
        .join(', ')
      await ownerPool.query(`grant usage on schema ${list} to ${quoteIdent(role)}`)
    }
    for (let i = 0; i < tables.length; i += 2000) {
      await ownerPool.query(
        `grant select, insert, update, delete on ${tables.slice(i, i + 2000).join(', ')} to ${quoteIdent(role)}`,
      )
    }

    say(`migrating ${options.tenants} tenants into the shared tables`)
    const started = performance.now()
    const report = await migrate({
      db: ownerPool,
      all: true,
      jobs: 2,
      source: { legacyTenantsTable: 'public.customers_client' },
    })
    const migrateMs = performance.now() - started
    if (!report.ok) {
      throw new Error(
        `the migration did not finish cleanly: ${report.tenants.filter((t) => t.status !== 'migrated').length} tenant(s) not migrated`,
      )
    }
    // The generator analyzed every tenant table; give the shared tables the same (no vacuum on either).
    await ownerPool.query(
      'analyze public.tenants, public.auth_user, public.auth_membership, public.finance_account, public.finance_transaction',
    )
    const { rows } = await ownerPool.query(
      `select coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint as b
         from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = 'public' and c.relkind in ('r', 'p')
          and c.relname in ('tenants', 'tenant_domains', 'auth_user', 'auth_membership',
                            'finance_account', 'finance_transaction')`,
    )
    const total = legacy.totals.users * 2 + legacy.totals.accounts + legacy.totals.transactions
    return {
      database,
      tenants: legacy.tenants.map((t) => ({ id: t.id, schema: t.schema, accounts: t.accounts })),
      rows: legacy.totals,
      ownerPool,
      runtimeUrl: urlFor(adminUrl, database, { name: role, password }),
      footprint: {
        schema: { classes: classes1 - classes0, bytes: bytes1 - bytes0 },
        row: { classes: classes2 - classes1, bytes: Number(rows[0].b) },
      },
      build: { generateMs: legacy.ms, migrateMs, migratedRows: total },
      drop,
    }
  } catch (err) {
    await drop().catch(() => {})
    throw err
  }
}
