import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { formatReport, migrate, readLedger } from '../src/entries/migrate.js'
import { quoteIdent } from '../src/sql/quote.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'
import {
  buildLegacyFixture,
  FIXTURE_TABLES,
  HOSTILE_SCHEMA,
  schemaFingerprint,
} from './helpers/legacy-fixture.js'

let db: TestDatabase
const schemas = ['acme', 'globex', HOSTILE_SCHEMA, 'drifty']
let before: Record<string, string>

beforeAll(async () => {
  db = await createTestDatabase('migrate_core')
  await buildLegacyFixture(db.pool, { rows: 20 })
  before = await schemaFingerprint(db.pool, schemas)
})
afterAll(async () => {
  db?.pool.on('error', () => {}) // a connection ended by DROP DATABASE ... WITH (FORCE)
  await db?.drop()
})

describe('migrate --all (composite)', () => {
  it('copies every tenant without drift, refuses the drifted one, and leaves the sources untouched', async () => {
    const events: string[] = []
    const report = await migrate({ db: db.pool, all: true, onEvent: (e) => events.push(e.type) })
    const byId = new Map(report.tenants.map((t) => [t.tenantId, t]))
    expect(byId.get('1')?.status, formatReport(report).join('\n')).toBe('migrated')
    expect(byId.get('2')?.status).toBe('migrated')
    expect(byId.get('3')?.status).toBe('migrated')
    // pitfall: an extra source column would be silently lost
    expect(byId.get('4')?.status).toBe('blocked')
    expect(
      byId.get('4')?.drift.some((d) => d.kind === 'missing-target-column' && d.column === 'isbn'),
    ).toBe(true)
    expect(report.ok).toBe(false)
    expect(report.guard).toBe('replica')
    expect(events).toContain('tenant-done')
    expect(await schemaFingerprint(db.pool, schemas)).toEqual(before)
  })

  it('keeps the legacy ids as tenants.id, with slugs and domains', async () => {
    const { rows } = await db.pool.query('select id::text, slug, name from tenants order by id')
    expect(rows).toEqual([
      { id: '1', slug: 'acme', name: 'Acme' },
      { id: '2', slug: 'globex', name: 'Globex' },
      { id: '3', slug: 'we-ird-schema-u', name: 'Weird & Co' },
    ])
    const domains = await db.pool.query(
      'select tenant_id::text, domain, is_primary from tenant_domains order by domain',
    )
    expect(domains.rows).toEqual([
      { tenant_id: '1', domain: 'acme.example.com', is_primary: true },
      { tenant_id: '2', domain: 'globex.example.com', is_primary: true },
      { tenant_id: '1', domain: 'www.acme.example.com', is_primary: false },
    ])
  })

  it('copies rows exactly: counts per tenant, no trigger rewrite, generated columns recomputed', async () => {
    for (const [id, schema] of [
      ['1', 'acme'],
      ['3', HOSTILE_SCHEMA],
    ] as const) {
      const s = `"${schema.replaceAll('"', '""')}"`
      // pitfall: hostile schema, table and column names
      for (const table of FIXTURE_TABLES.map(quoteIdent)) {
        const src = await db.pool.query(`select count(*)::int as n from ${s}.${table}`)
        const tgt = await db.pool.query(
          `select count(*)::int as n from public.${table} where tenant_id = $1`,
          [id],
        )
        expect(tgt.rows[0].n, `${schema}.${table}`).toBe(src.rows[0].n)
      }
    }
    // pitfall: the target's BEFORE INSERT trigger upper-cases names; it must not fire during the copy
    const names = await db.pool.query(
      `select name from public.finance_account where tenant_id = 1 and name <> upper(name)`,
    )
    expect(names.rowCount).toBeGreaterThan(0)
    const book = await db.pool.query(
      'select price, price_with_tax from public.book where tenant_id = 1 and id = 1',
    )
    expect(book.rows[0]).toEqual({ price: '3.17', price_with_tax: '3.804' })
  })

  it('moves the shared sequences above the copied ids', async () => {
    const max = await db.pool.query('select max(id)::int as m from public.finance_account')
    const next = await db.pool.query(
      `select nextval(pg_get_serial_sequence('public.finance_account', 'id'))::int as n`,
    )
    expect(next.rows[0].n).toBeGreaterThan(max.rows[0].m)
    const author = await db.pool.query(
      `select nextval(pg_get_serial_sequence('public.author', 'author_id'))::int as n`,
    )
    const amax = await db.pool.query('select max(author_id)::int as m from public.author')
    expect(author.rows[0].n).toBeGreaterThan(amax.rows[0].m)
    const t = await db.pool.query(
      `select nextval(pg_get_serial_sequence('public.tenants', 'id'))::int as n`,
    )
    expect(t.rows[0].n).toBeGreaterThan(3)
  })

  it('records each tenant in the ledger with counts and checksums', async () => {
    const ledger = await readLedger(db.pool, 'public')
    expect(ledger.get('1')?.state).toBe('done')
    expect(ledger.get('1')?.tables.book?.rows).toBe(20)
    expect(ledger.get('4')?.state).toBeUndefined()
  })

  it('a rerun skips finished tenants and never duplicates a row', async () => {
    const count = async () =>
      (await db.pool.query('select count(*)::int as n from public.book')).rows[0].n
    const n = await count()
    const report = await migrate({ db: db.pool, all: true })
    expect(report.tenants.filter((t) => t.status === 'skipped').map((t) => t.tenantId)).toEqual([
      '1',
      '2',
      '3',
    ])
    expect(await count()).toBe(n)
  })

  it('a rerun with nothing left to copy still moves sequences a crash left behind', async () => {
    // pitfall: a crash after the last tenant's COMMIT, before the sequence step; the rerun copies
    // nothing (every tenant done or blocked) but must still move the sequences above the ids
    await db.pool.query(`select setval(pg_get_serial_sequence('public.book', 'id'), 1, false)`)
    const report = await migrate({ db: db.pool, all: true })
    expect(report.totals.migrated).toBe(0)
    expect(report.sequences.map((s) => s.table)).toEqual(['book'])
    const max = await db.pool.query('select max(id)::int as m from public.book')
    const next = await db.pool.query(
      `select nextval(pg_get_serial_sequence('public.book', 'id'))::int as n`,
    )
    expect(next.rows[0].n).toBeGreaterThan(max.rows[0].m)
  })
})
