import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { migrate, verifyMigration } from '../src/entries/migrate.js'
import { quoteIdent } from '../src/sql/quote.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'
import { buildLegacyFixture } from './helpers/legacy-fixture.js'

let db: TestDatabase
let pool: pg.Pool
const role = `rt_migrator_${randomBytes(3).toString('hex')}`

beforeAll(async () => {
  db = await createTestDatabase('migrate_guard')
  await buildLegacyFixture(db.pool, { rows: 8, drift: false, hostile: false })
  const r = quoteIdent(role)
  await db.pool.query(`create role ${r} login password 'pw' nosuperuser`)
  for (const s of ['public', 'acme', 'globex']) {
    await db.pool.query(`grant usage, create on schema ${quoteIdent(s)} to ${r}`)
    await db.pool.query(
      `grant select, insert, update, delete on all tables in schema ${quoteIdent(s)} to ${r}`,
    )
    await db.pool.query(
      `grant usage, select, update on all sequences in schema ${quoteIdent(s)} to ${r}`,
    )
  }
  const url = new URL(db.url)
  url.username = role
  url.password = 'pw'
  pool = new pg.Pool({ connectionString: url.toString(), max: 4 })
})
afterAll(async () => {
  await pool?.end()
  await db?.drop()
  const admin = new pg.Client({ connectionString: new URL('/postgres', db.url).toString() })
  await admin.connect()
  await admin.query(`drop role if exists ${quoteIdent(role)}`).catch(() => {})
  await admin.end()
})

describe('without superuser: triggers and cycles', () => {
  it('refuses with a clear error when a target trigger would fire (and writes nothing)', async () => {
    const err = await migrate({ db: pool, all: true }).catch((e) => e)
    expect(err.message).toMatch(/may not set session_replication_role/)
    expect(err.message).toMatch(/trigger "finance_account_shout" on public\.finance_account/)
    expect(err.message).toMatch(/GRANT SET ON PARAMETER session_replication_role/)
    expect((await db.pool.query('select count(*)::int as n from tenants')).rows[0].n).toBe(0)
    // --dry-run says so too, instead of promising a run that would stop
    const dry = await migrate({ db: pool, all: true, dryRun: true })
    expect(dry.ok).toBe(false)
    expect(dry.warnings.join('\n')).toMatch(/A real run would stop: .*finance_account_shout/)
  })

  it('with no trigger, copies under SET CONSTRAINTS ALL DEFERRED (the cycle key is deferrable) and verifies', async () => {
    await db.pool.query('alter table public.finance_account disable trigger finance_account_shout')
    const report = await migrate({ db: pool, all: true })
    expect(report.guard).toBe('deferred')
    expect(report.ok).toBe(true)
    expect((await verifyMigration({ db: pool })).ok).toBe(true)
  })

  it('a non-deferrable key into a table copied later is named in the error', async () => {
    await db.pool.query(
      'alter table public.author alter constraint author_favorite_fk not deferrable',
    )
    const err = await migrate({ db: pool, all: true, dryRun: false }).catch((e) => e)
    // every tenant is done, so nothing is left to copy, but the guard is still checked first
    expect(err.message).toMatch(/author_favorite_fk.*not DEFERRABLE/)
  })
})
