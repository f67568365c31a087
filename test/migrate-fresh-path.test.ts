import type pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { copyTenant, migrate, planMigration, readLedger } from '../src/entries/migrate.js'
import { quoteIdent } from '../src/sql/quote.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'
import { buildLegacyFixture } from './helpers/legacy-fixture.js'

// A run sends a fresh tenant's lock, claim and copy in one round trip (the ledger had no row
// of it when the run started). Another run may finish that tenant in between: the one-trip
// copy must then give way to the step-by-step one, which skips it, and leave no transaction open.

let db: TestDatabase

beforeAll(async () => {
  db = await createTestDatabase('migrate_fresh_path')
  await buildLegacyFixture(db.pool, { rows: 20 })
})
afterAll(async () => {
  db?.pool.on('error', () => {})
  await db?.drop()
})

const rowsOf = async (tenant: string) =>
  Number(
    (await db.pool.query('select count(*) as n from public.book where tenant_id = $1', [tenant]))
      .rows[0].n,
  )

/** Rejects when the connection is outside a transaction block (SAVEPOINT needs one). */
const inTransaction = (client: pg.PoolClient) =>
  client.query('savepoint probe').then(
    () => true,
    () => false,
  )

describe('the one-trip copy of a fresh tenant', () => {
  it('gives way when another run finished the tenant after this run read the ledger', async () => {
    const plan = await planMigration(db.pool, { tenantIds: ['1'] })
    expect((await migrate({ db: db.pool, tenantIds: ['1'] })).tenants[0]?.status).toBe('migrated')
    const copied = await rowsOf('1')
    expect(copied).toBeGreaterThan(0)
    const client = await db.pool.connect()
    try {
      const r = await copyTenant(client, plan, plan.tenants[0]!, {
        guard: 'replica',
        verify: true,
        fresh: true,
      })
      expect(r.status).toBe('skipped')
      expect(await inTransaction(client)).toBe(false)
    } finally {
      client.release()
    }
    expect(await rowsOf('1')).toBe(copied)
  })

  it('gives way to the ledger when the finished tenant has no rows to find', async () => {
    const plan = await planMigration(db.pool, { tenantIds: ['2'] })
    expect((await migrate({ db: db.pool, tenantIds: ['2'] })).tenants[0]?.status).toBe('migrated')
    // The ledger says done; the target holds nothing that the claim's probe could find.
    const client = await db.pool.connect()
    await client.query('set session_replication_role = replica')
    for (const t of plan.tables)
      await client.query(`delete from public.${quoteIdent(t)} where tenant_id = 2`)
    await client.query('reset session_replication_role')
    try {
      for (const verify of [true, false]) {
        const r = await copyTenant(client, plan, plan.tenants[0]!, {
          guard: 'replica',
          verify,
          fresh: true,
        })
        expect(r.status).toBe('skipped')
        expect(await inTransaction(client)).toBe(false)
      }
    } finally {
      client.release()
    }
    expect(await rowsOf('2')).toBe(0)
    expect((await readLedger(db.pool, 'public')).get('2')?.state).toBe('done')
  })
})
