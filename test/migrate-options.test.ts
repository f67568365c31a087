import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { migrate, readLedger, rollbackTenants, verifyMigration } from '../src/entries/migrate.js'
import { MigrationError } from '../src/errors/index.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'
import { buildLegacyFixture, HOSTILE_SCHEMA, schemaFingerprint } from './helpers/legacy-fixture.js'

let db: TestDatabase

beforeAll(async () => {
  db = await createTestDatabase('migrate_opts')
  await buildLegacyFixture(db.pool, { rows: 12, ghost: true, extraTenants: 3 })
})
afterAll(async () => {
  db?.pool.on('error', () => {}) // a connection ended by DROP DATABASE ... WITH (FORCE)
  await db?.drop()
})

const count = async (sql: string, values: unknown[] = []) =>
  Number((await db.pool.query(sql, values)).rows[0].n)

describe('migrate options and bad input', () => {
  it('--dry-run reports tenants, row counts and drift, and writes nothing at all', async () => {
    const report = await migrate({ db: db.pool, all: true, dryRun: true })
    expect(report.dryRun).toBe(true)
    const acme = report.tenants.find((t) => t.tenantId === '1')!
    expect(acme.status).toBe('planned')
    expect(acme.tables.find((t) => t.table === 'book')?.rows).toBe(12)
    expect(report.tenants.find((t) => t.tenantId === '4')?.drift.some((d) => d.blocking)).toBe(true)
    // pitfall: a schema named by the legacy table that does not exist
    const ghost = report.tenants.find((t) => t.tenantId === '99')!
    expect(ghost.status).toBe('blocked')
    expect(ghost.drift[0]?.kind).toBe('missing-schema')
    expect(
      (await db.pool.query("select to_regclass('public.rowtenancy_migration') as r")).rows[0].r,
    ).toBeNull()
    expect(await count('select count(*) as n from tenants')).toBe(0)
    expect(await count('select count(*) as n from public.book')).toBe(0)
  })

  it('an unknown --tenant-id is an error before anything is written', async () => {
    await expect(migrate({ db: db.pool, tenantIds: ['1', '12345'] })).rejects.toThrow(
      /Unknown tenant id "12345"/,
    )
    await expect(migrate({ db: db.pool, tenantIds: ['abc'] })).rejects.toThrow(/Invalid tenant id/)
    await expect(migrate({ db: db.pool })).rejects.toThrow(/`all`, or `tenantIds`/)
    expect(
      (await db.pool.query("select to_regclass('public.rowtenancy_migration') as r")).rows[0].r,
    ).toBeNull()
  })

  it('an unknown --model is an error naming the table it looked for', async () => {
    const err = await migrate({ db: db.pool, all: true, models: ['finance.Nope'] }).catch((e) => e)
    expect(err).toBeInstanceOf(MigrationError)
    expect(err.message).toMatch(/finance\.Nope.*finance_nope/)
  })

  it('--tenant-id with --model finance.Account copies just that table, and a later run completes the tenant', async () => {
    const r1 = await migrate({ db: db.pool, tenantIds: ['2'], models: ['finance.Account'] })
    expect(r1.ok).toBe(true)
    expect(r1.tenants.map((t) => [t.tenantId, t.status])).toEqual([['2', 'migrated']])
    expect(r1.tenants[0]?.tables.map((t) => t.table)).toEqual(['finance_account'])
    expect((await readLedger(db.pool, 'public')).get('2')?.state).toBe('partial')
    expect(await count('select count(*) as n from public.book where tenant_id = 2')).toBe(0)
    const r2 = await migrate({ db: db.pool, tenantIds: ['2'] })
    expect(r2.ok).toBe(true)
    expect(r2.tenants[0]?.tables.map((t) => t.table)).not.toContain('finance_account')
    expect((await readLedger(db.pool, 'public')).get('2')?.state).toBe('done')
    expect(
      await count('select count(*) as n from public.finance_account where tenant_id = 2'),
    ).toBe(13)
  })

  it('refuses a tenant whose rows are already in the target (no duplicates) and leaves nothing behind', async () => {
    await db.pool.query(`insert into tenants (id, slug, name) values (10, 'pre', 'Pre-existing')`)
    await db.pool.query(
      `insert into public.tag (tenant_id, id, label) values (10, 1, 'already here')`,
    )
    const report = await migrate({ db: db.pool, tenantIds: ['10'] })
    expect(report.ok).toBe(false)
    expect(report.tenants[0]?.status).toBe('failed')
    expect(report.tenants[0]?.error).toMatch(/already holds rows of tenant 10/)
    expect(
      await count('select count(*) as n from public.finance_account where tenant_id = 10'),
    ).toBe(0)
    expect((await readLedger(db.pool, 'public')).get('10')?.state).toBe('pending')
    await db.pool.query('delete from public.tag where tenant_id = 10')
  })

  it('--strict refuses the whole run when any tenant has blocking drift', async () => {
    const report = await migrate({ db: db.pool, all: true, strict: true })
    expect(report.ok).toBe(false)
    expect(report.aborted).toMatch(/`strict`/)
    expect(report.tenants.find((t) => t.tenantId === '1')?.status).toBe('not-run')
    expect(await count('select count(*) as n from public.book where tenant_id = 1')).toBe(0)
  })

  it('--all --jobs 3 migrates the rest in parallel; blocked and missing schemas are reported, exit not ok', async () => {
    // pitfall: the slug made from the schema name is already another tenant's
    await db.pool.query(
      `insert into tenants (id, slug, name) values (500, 'tenant-11', 'Squatter')`,
    )
    const before = await schemaFingerprint(db.pool, ['acme', HOSTILE_SCHEMA, 'tenant_11'])
    const report = await migrate({ db: db.pool, all: true, jobs: 3 })
    const status = Object.fromEntries(report.tenants.map((t) => [t.tenantId, t.status]))
    expect(status).toEqual({
      '1': 'migrated',
      '2': 'skipped',
      '3': 'migrated',
      '4': 'blocked',
      '10': 'migrated',
      '11': 'migrated',
      '12': 'migrated',
      '99': 'blocked',
    })
    expect(report.ok).toBe(false)
    expect(await schemaFingerprint(db.pool, ['acme', HOSTILE_SCHEMA, 'tenant_11'])).toEqual(before)
    // slug collision: tenant 10 existed with slug 'pre' and keeps it
    expect((await db.pool.query('select slug from tenants where id = 10')).rows[0].slug).toBe('pre')
    expect((await db.pool.query('select slug from tenants where id = 11')).rows[0].slug).toBe(
      'tenant-11-11',
    )
  })
})

describe('source discovery', () => {
  it('--schema-pattern finds tenant_{id} schemas and nothing else', async () => {
    const report = await migrate({
      db: db.pool,
      all: true,
      dryRun: true,
      source: { schemaPattern: 'tenant_{id}' },
    })
    expect(report.tenants.map((t) => t.tenantId)).toEqual(['10', '11', '12'])
  })

  it('a named legacy table that does not exist is a clear error', async () => {
    await expect(
      migrate({
        db: db.pool,
        all: true,
        dryRun: true,
        source: { legacyTenantsTable: 'public.nope' },
      }),
    ).rejects.toThrow(/public\.nope does not exist/)
  })

  it('after a rollback, --no-verify migrates again, records the counts and scans nothing', async () => {
    await rollbackTenants({ db: db.pool, tenantIds: ['12'] })
    expect(await count('select count(*) as n from public.book where tenant_id = 12')).toBe(0)
    const report = await migrate({ db: db.pool, tenantIds: ['12'], verify: false })
    expect(report.ok).toBe(true)
    expect(report.verify).toBe(false)
    const entry = (await readLedger(db.pool, 'public')).get('12')
    expect(entry?.verifiedAt).toBeNull()
    expect(entry?.tables.book?.rows).toBe(12 + 6)
    expect(entry?.tables.book?.checksum).toBe('')
    // a later verify does the checking the run skipped
    const v = await verifyMigration({ db: db.pool, tenantIds: ['12'] })
    expect(v.ok).toBe(true)
  })
})
