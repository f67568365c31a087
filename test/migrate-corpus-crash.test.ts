import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { migrate } from '../src/migrate/index.js'
import { applyTenantSchema } from '../src/schema/generate/index.js'
import { installTenantTables } from '../src/tenants/index.js'
import { createCorpusTenant, HOSTILE_NAMES, STORE } from './helpers/corpus.js'
import {
  migrateThroughKills,
  migrationTargetState,
  sourcesFingerprint,
  templateCopies,
} from './helpers/crash-harness.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'

const SOURCES = [...HOSTILE_NAMES, 'Tenant Five', 'tenant_6', 'tenant_7', 'tenant_8']
let original: TestDatabase
const copies = templateCopies()

beforeAll(async () => {
  original = await createTestDatabase('corpus_crash')
  const db = original.pool
  await installTenantTables(db, { idType: 'bigint' })
  await db.query(
    'create table public.customers_client (id int primary key, schema_name text not null unique, name text not null)',
  )
  for (const [i, schema] of SOURCES.entries()) {
    await createCorpusTenant(db, STORE, schema, i + 1)
    await db.query('insert into public.customers_client values ($1, $2, $3)', [
      i + 1,
      schema,
      `Tenant ${i + 1}`,
    ])
  }
  await applyTenantSchema(db, { fromSchema: HOSTILE_NAMES[0] })
  await db.end()
}, 120_000)
afterAll(async () => {
  await copies.dropAll()
  await original?.drop()
})

describe('corpus store: kill -9 mid-run, rerun', () => {
  it('ends identical to a clean migration of a copy, sources untouched', async () => {
    const cleanUrl = await copies.copyOf(original.name, 'clean')
    const crashUrl = await copies.copyOf(original.name, 'crash')
    const sourcesBefore = await sourcesFingerprint(crashUrl, SOURCES)
    const cleanPool = new pg.Pool({ connectionString: cleanUrl, max: 3 })
    const clean = await migrate({ db: cleanPool, all: true, jobs: 2 })
    await cleanPool.end()
    expect(clean.ok, JSON.stringify(clean.tenants.filter((t) => t.status !== 'migrated'))).toBe(
      true,
    )
    // Kill points (JSON event lines): right after the plan, inside a tenant, later on.
    await migrateThroughKills(crashUrl, [1, 7, 23, 41], SOURCES.length)
    const a = await migrationTargetState(cleanUrl, STORE.tables, SOURCES)
    const b = await migrationTargetState(crashUrl, STORE.tables, SOURCES)
    expect(b).toEqual(a)
    expect(b.sources).toBe(sourcesBefore)
  }, 180_000)
})
