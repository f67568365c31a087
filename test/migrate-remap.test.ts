import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { migrate, rollbackTenants, verifyMigration } from '../src/entries/migrate.js'
import { quoteIdent } from '../src/sql/quote.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'
import { buildLegacyFixture, HOSTILE_SCHEMA } from './helpers/legacy-fixture.js'

let db: TestDatabase

beforeAll(async () => {
  db = await createTestDatabase('migrate_remap')
  await buildLegacyFixture(db.pool, { rows: 15, drift: false, target: 'remap' })
})
afterAll(async () => {
  db?.pool.on('error', () => {}) // a connection ended by DROP DATABASE ... WITH (FORCE)
  await db?.drop()
})

/** Pairs joined through a foreign key, by natural values (ids differ after remap). */
async function pairs(source: string | null, tenant: string): Promise<string[][]> {
  const from = (t: string) => (source ? `${quoteIdent(source)}.${t}` : `public.${t}`)
  const where = (a: string) => (source ? 'true' : `${a}.tenant_id = ${Number(tenant)}`)
  const q = async (sql: string) =>
    (await db.pool.query(sql)).rows.map((r) => Object.values(r).join(' | ')).sort()
  return [
    await q(
      `select b.title, a.name from ${from('book')} b join ${from('author')} a on a.author_id = b.author_id where ${where('b')}`,
    ),
    await q(
      `select a.name, b.title from ${from('author')} a join ${from('book')} b on b.id = a.favorite_book_id where ${where('a')}`,
    ),
    await q(
      `select c.name, p.name from ${from('finance_account')} c join ${from('finance_account')} p on p.id = c.parent_id where ${where('c')}`,
    ),
    await q(
      `select b.title, t.label from ${from('book_tag')} x join ${from('book')} b on b.id = x.book_id join ${from('tag')} t on t.id = x.tag_id where ${where('x')}`,
    ),
  ]
}

describe('--id-strategy remap', () => {
  it('assigns new ids from the shared sequences and rewrites every foreign key (self-reference and cycle included)', async () => {
    const report = await migrate({ db: db.pool, all: true, idStrategy: 'remap', jobs: 2 })
    expect(report.ok).toBe(true)
    expect(report.tenants.every((t) => t.status === 'migrated')).toBe(true)
    for (const [id, schema] of [
      ['1', 'acme'],
      ['2', 'globex'],
      ['3', HOSTILE_SCHEMA],
    ] as const) {
      expect(await pairs(null, id), schema).toEqual(await pairs(schema, id))
    }
    // ids are unique across tenants now: single-column keys
    const books = await db.pool.query(
      'select count(*)::int as n, count(distinct id)::int as d from public.book',
    )
    expect(books.rows[0].n).toBe(books.rows[0].d)
    expect(books.rows[0].n).toBe(15 + 16 + 17)
  })

  it('keeps the id mapping for audit', async () => {
    const { rows } = await db.pool.query(
      `select count(*)::int as n from rowtenancy_id_map where tenant_id = '2' and table_name = 'book'`,
    )
    expect(rows[0].n).toBe(16)
  })

  it('verify recomputes the source side through the mapping', async () => {
    const v = await verifyMigration({ db: db.pool })
    expect(v.tenants.map((t) => t.problems)).toEqual([[], [], []])
    expect(v.ok).toBe(true)
  })

  it('rollback removes the rows and the mappings', async () => {
    await rollbackTenants({ db: db.pool, tenantIds: ['2'] })
    const m = await db.pool.query(
      `select count(*)::int as n from rowtenancy_id_map where tenant_id = '2'`,
    )
    expect(m.rows[0].n).toBe(0)
    const again = await migrate({ db: db.pool, tenantIds: ['2'], idStrategy: 'remap' })
    expect(again.ok).toBe(true)
    expect(await pairs(null, '2')).toEqual(await pairs('globex', '2'))
  })
})
