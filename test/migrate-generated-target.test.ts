import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { migrate, verifyMigration } from '../src/entries/migrate.js'
import { applyTenantSchema } from '../src/schema/generate/index.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'
import { buildLegacyFixture, HOSTILE_SCHEMA } from './helpers/legacy-fixture.js'

let db: TestDatabase

beforeAll(async () => {
  db = await createTestDatabase('migrate_gen')
  await buildLegacyFixture(db.pool, { rows: 10, target: 'none' })
})
afterAll(async () => {
  db?.pool.on('error', () => {}) // a connection ended by DROP DATABASE ... WITH (FORCE)
  await db?.drop()
})

describe('target tables from `schema generate`', () => {
  it('migrates every tenant into the tables generated from a template schema, and verifies', async () => {
    const applied = await applyTenantSchema(db.pool, { fromSchema: 'acme' })
    expect(applied.status).toBe('created')
    const report = await migrate({ db: db.pool, all: true, jobs: 2 })
    const status = Object.fromEntries(report.tenants.map((t) => [t.tenantId, t.status]))
    expect(status).toEqual({ '1': 'migrated', '2': 'migrated', '3': 'migrated', '4': 'blocked' })
    const v = await verifyMigration({ db: db.pool })
    expect(v.tenants.every((t) => t.ok)).toBe(true)
    // the blocked tenant is named, with its drift, and the report is not ok
    expect(v.missing.map((m) => [m.tenantId, m.state])).toEqual([['4', 'not started']])
    expect(v.missing[0]?.reason).toMatch(/^blocked by drift: book\.isbn/)
    expect(v.ok).toBe(false)
    expect((await verifyMigration({ db: db.pool, tenantIds: ['1', '2', '3'] })).ok).toBe(true)
    const n = await db.pool.query('select count(*)::int as n from public.book where tenant_id = 3')
    expect(n.rows[0].n).toBe(12)
    expect(report.tenants.find((t) => t.tenantId === '3')?.schema).toBe(HOSTILE_SCHEMA)
  })
})
