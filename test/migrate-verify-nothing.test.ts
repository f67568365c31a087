import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { dropSchemas, migrate, verifyMigration } from '../src/entries/migrate.js'
import { cli } from './helpers/cli.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'
import { buildLegacyFixture } from './helpers/legacy-fixture.js'

/**
 * Pitfall: `verify` said ok when it compared nothing, and `rowtenancy verify &&
 * rowtenancy drop-schemas --yes` is how the legacy schemas are dropped: a
 * source with no tenant (a wrong database, an empty legacy table, a pattern
 * matching nothing), a tenant whose ledger entry records no table, or a table
 * made in a migrated schema after its migration (never compared, then dropped
 * with the schema). Each is now a failing verification that says what it did
 * not find and what to do, and drop-schemas keeps such a schema.
 */

let db: TestDatabase
let empty: TestDatabase

const schemaExists = async (name: string) =>
  (await db.pool.query('select 1 from pg_namespace where nspname = $1', [name])).rows.length === 1

beforeAll(async () => {
  db = await createTestDatabase('verify_nothing')
  await buildLegacyFixture(db.pool, { rows: 3, drift: false, hostile: false })
  // tenant 5: a legacy schema with no table
  await db.pool.query('create schema tenant_bare')
  await db.pool.query(
    "insert into public.customers_client (id, schema_name, name) values (5, 'tenant_bare', 'Bare')",
  )
  empty = await createTestDatabase('verify_nothing_empty')
  await buildLegacyFixture(empty.pool, { rows: 3, drift: false, hostile: false })
  await empty.pool.query('delete from public.customers_domain')
  await empty.pool.query('delete from public.customers_client')
})
afterAll(async () => {
  db?.pool.on('error', () => {})
  empty?.pool.on('error', () => {})
  await db?.drop()
  await empty?.drop()
})

describe('verify that compared nothing is not ok', () => {
  it('no legacy tenant and none migrated: not ok, says what it did not find; the CLI exits 1; --allow-empty passes', async () => {
    const v = await verifyMigration({ db: empty.pool })
    expect(v.ok).toBe(false)
    expect(v.tenants).toEqual([])
    expect(v.problems).toHaveLength(1)
    expect(v.problems[0]).toMatch(
      /^No tenant to verify in database "[^"]*verify_nothing_empty[^"]*": the legacy tenants table .* names no tenant, and the ledger public\.rowtenancy_migration holds no migrated tenant\. Nothing was compared\./,
    )
    expect(v.problems[0]).toMatch(
      /run rowtenancy migrate-to-row-tenancy first, or pass `allowEmpty`/,
    )
    expect((await verifyMigration({ db: empty.pool, allowEmpty: true })).ok).toBe(true)
    const r = await cli(['verify', '--database-url', empty.url])
    expect(r.code, r.stdout).toBe(1)
    expect(r.stderr).toMatch(/No tenant to verify in database .*Nothing was compared/)
    const allowed = await cli(['verify', '--allow-empty', '--database-url', empty.url])
    expect(allowed.code, allowed.stderr).toBe(0)
  })

  it('a schema pattern matching no schema: names the pattern', async () => {
    const v = await verifyMigration({ db: db.pool, source: { schemaPattern: 'nomatch_{id}' } })
    expect(v.ok).toBe(false)
    expect(v.problems[0]).toMatch(/no schema matches the pattern "nomatch_\{id\}"/)
  })

  it('a tenant id that is neither a legacy tenant nor in the ledger: a clear error, exit 1', async () => {
    await expect(verifyMigration({ db: db.pool, tenantIds: ['77'] })).rejects.toThrow(
      /Tenant 77 is neither a legacy tenant of the source nor in the ledger public\.rowtenancy_migration: check the id/,
    )
    const r = await cli(['verify', '--tenant-id', '77', '--database-url', db.url])
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/Tenant 77 is neither a legacy tenant/)
    // a legacy tenant not migrated yet keeps its own message
    await expect(verifyMigration({ db: db.pool, tenantIds: ['1'] })).rejects.toThrow(
      /Tenant 1 has not been migrated/,
    )
  })

  it('a ledger entry recording no table (written by hand or another tool): verify names it; drop-schemas keeps the schema', async () => {
    const report = await migrate({ db: db.pool, all: true })
    expect(report.ok).toBe(true)
    // an empty legacy schema is skipped, not recorded as migrated
    expect(report.tenants.find((t) => t.tenantId === '5')?.status).toBe('skipped')
    const saved = await db.pool.query(
      "select tables from public.rowtenancy_migration where tenant_id = '1'",
    )
    await db.pool.query(
      "update public.rowtenancy_migration set tables = '{}' where tenant_id = '1'",
    )
    try {
      const v = await verifyMigration({ db: db.pool, tenantIds: ['1'] })
      expect(v.ok).toBe(false)
      expect(v.tenants[0]!.tables).toEqual([])
      expect(v.tenants[0]!.problems).toEqual([
        expect.stringMatching(/ledger entry of tenant 1 records no table: nothing was compared/),
      ])
      const dropped = await dropSchemas({ db: db.pool, yes: true, tenantIds: ['1'] })
      expect(dropped).toEqual([
        expect.objectContaining({ tenantId: '1', dropped: false, problems: [expect.any(String)] }),
      ])
      expect(await schemaExists('acme')).toBe(true)
      const r = await cli(['verify', '--tenant-id', '1', '--database-url', db.url])
      expect(r.code).toBe(1)
      expect(r.stdout).toMatch(/tenant 1 \("acme"\): MISMATCH, 0 tables/)
    } finally {
      await db.pool.query(
        "update public.rowtenancy_migration set tables = $1 where tenant_id = '1'",
        [saved.rows[0].tables],
      )
    }
  })

  it('a table made in a migrated schema after the migration: verify names it; drop-schemas keeps the schema', async () => {
    expect((await verifyMigration({ db: db.pool, tenantIds: ['2'] })).ok).toBe(true)
    await db.pool.query('create table globex.late_notes (id int primary key, body text)')
    await db.pool.query("insert into globex.late_notes values (1, 'written after the migration')")
    const v = await verifyMigration({ db: db.pool, tenantIds: ['2'] })
    expect(v.ok).toBe(false)
    expect(v.tenants[0]!.problems).toEqual([
      expect.stringMatching(
        /^globex\.late_notes is not in the tenant's ledger entry .*not compared/,
      ),
    ])
    const dropped = await dropSchemas({ db: db.pool, yes: true, tenantIds: ['2'] })
    expect(dropped[0]).toMatchObject({ tenantId: '2', dropped: false })
    expect(await schemaExists('globex')).toBe(true)
    // the other tenant verifies and its schema is dropped as before
    const acme = await dropSchemas({ db: db.pool, yes: true, tenantIds: ['1'] })
    expect(acme[0]).toMatchObject({ tenantId: '1', dropped: true })
  })
})
