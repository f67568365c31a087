import type pg from 'pg'
import { migrate } from '../../src/migrate/index.js'
import { quoteIdent } from '../../src/sql/quote.js'
import { installTenantTables } from '../../src/tenants/index.js'
import { buildLegacyFixture, compositeTargetDdl, FIXTURE_TABLES } from './legacy-fixture.js'

/** The tenant tables of the lifecycle fixture (the migration fixture's targets). */
export const LIFECYCLE_TABLES: readonly string[] = FIXTURE_TABLES

/** Adds a bytea column (binary data) to the fixture's `tag` table. */
const BINARY_DDL = 'alter table public.tag add column blob bytea'

/**
 * A database holding three migrated tenants (1 acme, 2 globex, 3 the hostile
 * one) in the composite target tables: hostile table and column names, a
 * foreign-key cycle (author <-> book), a partitioned table (event), an enum, a
 * generated column, jsonb, and a bytea column with every byte value.
 */
export async function buildLifecycleSource(pool: pg.Pool, rows = 20): Promise<void> {
  await buildLegacyFixture(pool, { rows, drift: false })
  const report = await migrate({ db: pool, all: true })
  if (!report.ok) throw new Error('fixture migration failed')
  await pool.query(BINARY_DDL)
  await pool.query(
    `update public.tag set blob = decode(repeat(md5(tenant_id::text || id::text), 4), 'hex') ||
       (select string_agg(set_byte('\\x00'::bytea, 0, b), ''::bytea) from generate_series(0, 255) b)`,
  )
}

/** An empty database with the same tables (no tenants): what an import lands in. */
export async function buildLifecycleTarget(pool: pg.Pool): Promise<void> {
  await pool.query('create table public.country (id int primary key, code text not null)')
  await pool.query(`insert into public.country values (1, 'DE'), (2, 'FR')`)
  await installTenantTables(pool, { idType: 'bigint' })
  for (const s of compositeTargetDdl()) await pool.query(s)
  await pool.query(BINARY_DDL)
}

/**
 * Per tenant and table: row count and a checksum of whole rows (an independent
 * statement, not the library's), `table@tenant -> count:sum`.
 */
export async function rowsByTenant(pool: pg.Pool): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  for (const t of LIFECYCLE_TABLES) {
    const { rows } = await pool.query(
      `select tenant_id::text as id, count(*)::text || ':' || sum(hashtextextended(x::text, 0))::text as f
         from public.${quoteIdent(t)} x group by 1 order by 1`,
    )
    for (const r of rows) out[`${t}@${r.id}`] = r.f
  }
  return out
}
