import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { migrate, readLedger, verifyMigration } from '../src/entries/migrate.js'
import { sqlContext } from '../src/migrate/copy.js'
import { sourceChecksumStatement, targetChecksumStatement } from '../src/migrate/copy-sql.js'
import { planMigration } from '../src/migrate/plan.js'
import { installTenantTables } from '../src/tenants/install.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'

/**
 * The migration's row checksum (`typed`: each column hashed by its type where that
 * is exact, else by its binary send form, else its text). Pitfalls: a type whose
 * equality is coarser than identity (numeric 1.5 = 1.50, float -0 = 0, interval
 * 1 day = 24 hours, jsonb 1.0 = 1.00, an array with other bounds, text under a
 * case-insensitive comparison) must still tell a changed value apart; the checksum
 * must not depend on session settings (a verify run under another TimeZone,
 * DateStyle, IntervalStyle or extra_float_digits than the copy's); a ledger written
 * with the text checksum of an earlier version still verifies.
 */

let db: TestDatabase

const COLUMNS = `id int not null, n numeric, f float8, r real, i interval, j jsonb, a int[],
  ts timestamptz, d date, tx text, vc varchar(20), ch char(4), b bool, u uuid, by bytea,
  mood mood, pt point, tt timetz, bi bigint, tn timestamp, ma mood[], ta timestamptz[],
  tr tstzrange, da date[], ia interval[]`

const ROW = `(1, 1.5, 0, 1.25, '1 day', '{"x": 1.0}', '{1,2}', '2024-01-01 10:00+00', '2024-02-03',
  'Hello', 'World', 'ab', true, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\\x0102',
  'happy', '(1,2)', '10:00+02', -1, 'infinity', '{happy,sad}', '{2024-01-01 10:00+00}',
  '[2024-01-01 10:00+00,2024-01-02 10:00+00)', '{2024-02-03}', '{1 day 02:00}')`

beforeAll(async () => {
  db = await createTestDatabase('migrate_checksum')
  await installTenantTables(db.pool, { idType: 'bigint' })
  await db.pool.query(`
    create type public.mood as enum ('sad', 'happy');
    create table public.customers_client (id int primary key, schema_name text not null unique, name text not null);
    insert into public.customers_client values (1, 'tenant_1', 'One'), (2, 'tenant_2', 'Two');
    create table public.kinds (tenant_id bigint not null references public.tenants (id), ${COLUMNS},
      primary key (tenant_id, id));
    create schema tenant_1; create schema tenant_2;
    create table tenant_1.kinds (${COLUMNS.replaceAll('mood mood', 'mood public.mood')}, primary key (id));
    create table tenant_2.kinds (${COLUMNS.replaceAll('mood mood', 'mood public.mood')}, primary key (id));
    insert into tenant_1.kinds values ${ROW}, (2, null, null, null, null, null, null, null, null, null,
      null, null, null, null, null, null, null, null, null, null, null, null, null, null, null);
    insert into tenant_1.kinds values (3, 2.5, 1, 1, '2 days', '{}', '{3}', '2024-01-02 10:00+00',
      '2024-02-04', 'Bye', 'All', 'cd', false, 'b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\\x03',
      'sad', '(3,4)', '11:00+02', 7, '2020-01-01', '{}', '{}', 'empty', '{}', '{}');
    insert into tenant_2.kinds values ${ROW};`)
  const report = await migrate({
    db: db.pool,
    all: true,
    source: { legacyTenantsTable: 'public.customers_client' },
  })
  expect(report.ok, JSON.stringify(report.tenants)).toBe(true)
})
afterAll(async () => {
  db?.pool.on('error', () => {}) // a connection ended by DROP DATABASE ... WITH (FORCE)
  await db?.drop()
})

/**
 * Runs each `set` on its row of tenant 1 in the shared table as a superuser (no RLS),
 * then verify of tenant 1; puts the tenant's rows back as the source has them.
 */
async function verifyAfter(...changes: [id: number, set: string][]): Promise<boolean> {
  const c = await db.pool.connect()
  const names = COLUMNS.split(/,\s*/).map((x) => x.trim().split(' ')[0])
  try {
    for (const [id, set] of changes) {
      const r = await c.query(`update public.kinds set ${set} where tenant_id = 1 and id = $1`, [
        id,
      ])
      expect(r.rowCount).toBe(1)
    }
    return (await verifyMigration({ db: db.pool, tenantIds: ['1'], record: false })).ok
  } finally {
    await c.query(`update public.kinds k set (${names.join(', ')}) =
      (select * from tenant_1.kinds s where s.id = k.id) where tenant_id = 1`)
    c.release()
  }
}

describe('the typed row checksum of the migration', () => {
  it('is what the ledger records, and verify passes', async () => {
    const ledger = await readLedger(db.pool, 'public')
    expect(ledger.get('1')?.tables.kinds?.checksum).toMatch(/^r2:-?\d+$/)
    expect((await verifyMigration({ db: db.pool, record: false })).ok).toBe(true)
  })

  it('tells apart values that are equal but not the same', async () => {
    expect(await verifyAfter([1, 'n = 1.50'])).toBe(false)
    expect(await verifyAfter([1, `f = '-0'`])).toBe(false)
    expect(await verifyAfter([1, `i = '24 hours'`])).toBe(false)
    expect(await verifyAfter([1, `j = '{"x": 1.00}'`])).toBe(false)
    expect(await verifyAfter([1, `a = '[0:1]={1,2}'`])).toBe(false)
    expect(await verifyAfter([1, `tx = 'hello'`])).toBe(false)
    expect(await verifyAfter([1, `ch = 'ab  '`])).toBe(true) // char(4) pads: the same value
    expect(await verifyAfter([1, `ts = '2024-01-01 10:00:00.000001+00'`])).toBe(false)
    expect(await verifyAfter([1, `tt = '08:00+00'`])).toBe(false)
    expect(await verifyAfter([1, `mood = 'sad'`])).toBe(false)
    expect(await verifyAfter([1, `ma = '{sad,happy}'`])).toBe(false)
    expect(await verifyAfter([1, `pt = '(1,2.0000001)'`])).toBe(false)
    expect(await verifyAfter([1, `by = '\\x0103'`])).toBe(false)
    // and a value that is merely restored verifies again
    expect(await verifyAfter([1, 'n = 1.5'])).toBe(true)
  })

  it('tells apart values whose own hashes collide', async () => {
    expect(await verifyAfter([1, 'n = -1.5'])).toBe(false) // numeric: the hash ignores the sign
    expect(await verifyAfter([2, `n = 'NaN'`])).toBe(false) // and NaN hashes as NULL does
    expect(await verifyAfter([1, 'bi = 4294967295'])).toBe(false) // 64 bits folded into 32: -1
    expect(await verifyAfter([2, 'bi = 0'])).toBe(false)
    expect(await verifyAfter([1, `tn = '2000-01-01 00:35:47.483648'`])).toBe(false) // = infinity
  })

  it('values swapped between rows, or moved into a NULL, do not cancel out', async () => {
    expect(await verifyAfter([1, `tx = 'Bye'`], [3, `tx = 'Hello'`])).toBe(false)
    expect(await verifyAfter([1, 'bi = 7'], [3, 'bi = -1'])).toBe(false)
    expect(await verifyAfter([1, 'tx = null'], [2, `tx = 'Hello'`])).toBe(false)
    expect(
      await verifyAfter([1, `ts = '2024-01-02 10:00+00'`], [3, `ts = '2024-01-01 10:00+00'`]),
    ).toBe(false)
  })

  it('does not depend on the session settings of the run that verifies', async () => {
    const url = new URL(db.url)
    url.searchParams.set(
      'options',
      '-c TimeZone=Asia/Kolkata -c DateStyle=SQL,DMY -c IntervalStyle=sql_standard -c extra_float_digits=-3',
    )
    const other = new pg.Pool({ connectionString: url.toString(), max: 2 })
    try {
      const report = await verifyMigration({ db: other, record: false })
      expect(report.ok, JSON.stringify(report.tenants.flatMap((t) => t.problems))).toBe(true)
    } finally {
      await other.end()
    }
  })

  it('a ledger recorded with the text checksum of an earlier version still verifies', async () => {
    const client = await db.pool.connect()
    try {
      const plan = await planMigration(client, {
        all: true,
        source: { legacyTenantsTable: 'public.customers_client' },
      })
      const tp = plan.tenants.find((t) => t.tenant.id === '2')!
      const table = tp.tables[0]!
      const ctx = sqlContext(plan, tp)
      const t = targetChecksumStatement(ctx, table, 'text')
      const s = sourceChecksumStatement(ctx, table, 'text')
      const text = (await client.query(t.text, t.values)).rows[0].sum as string
      expect((await client.query(s.text, s.values)).rows[0].sum).toBe(text)
      expect(text).not.toMatch(/^r[12]:/)
      await client.query(
        `update public.rowtenancy_migration
            set tables = jsonb_set(tables, '{kinds,checksum}', to_jsonb($1::text)) where tenant_id = '2'`,
        [text],
      )
      expect((await verifyMigration({ db: db.pool, tenantIds: ['2'], record: false })).ok).toBe(
        true,
      )
      await client.query(
        `update public.rowtenancy_migration
            set tables = jsonb_set(tables, '{kinds,checksum}', to_jsonb('123'::text)) where tenant_id = '2'`,
      )
      expect((await verifyMigration({ db: db.pool, tenantIds: ['2'], record: false })).ok).toBe(
        false,
      )
    } finally {
      client.release()
    }
  })

  it('a ledger recorded with the typed checksum of an earlier version (r1) still verifies, and a changed row fails it', async () => {
    const client = await db.pool.connect()
    try {
      const plan = await planMigration(client, {
        all: true,
        source: { legacyTenantsTable: 'public.customers_client' },
      })
      const tp = plan.tenants.find((t) => t.tenant.id === '2')!
      const ctx = sqlContext(plan, tp)
      const sums = async (kind: 'typed' | 'typed-r1') => {
        const out: Record<string, string> = {}
        for (const table of tp.tables) {
          const t = targetChecksumStatement(ctx, table, kind)
          const s = sourceChecksumStatement(ctx, table, kind)
          const target = (await client.query(t.text, t.values)).rows[0].sum as string
          expect((await client.query(s.text, s.values)).rows[0].sum).toBe(target)
          out[table.name] = target
        }
        return out
      }
      const r1 = await sums('typed-r1')
      const r2 = await sums('typed')
      for (const name of Object.keys(r1)) {
        expect(r1[name]).toMatch(/^r1:-?\d+$/)
        expect(r2[name]).toMatch(/^r2:-?\d+$/)
        expect(r1[name]!.slice(3)).not.toBe(r2[name]!.slice(3))
      }
      const record = async (checksums: Record<string, string>) => {
        for (const [name, sum] of Object.entries(checksums))
          await client.query(
            `update public.rowtenancy_migration
                set tables = jsonb_set(tables, array[$1, 'checksum'], to_jsonb($2::text)) where tenant_id = '2'`,
            [name, sum],
          )
      }
      await record(r1)
      expect((await verifyMigration({ db: db.pool, tenantIds: ['2'], record: false })).ok).toBe(
        true,
      )
      // An r1 value off by one, or an r2 value marked r1: both are mismatches.
      const first = Object.keys(r1)[0]!
      await record({ [first]: `r1:${BigInt(r1[first]!.slice(3)) + 1n}` })
      expect((await verifyMigration({ db: db.pool, tenantIds: ['2'], record: false })).ok).toBe(
        false,
      )
      await record({ [first]: `r1:${r2[first]!.slice(3)}` })
      expect((await verifyMigration({ db: db.pool, tenantIds: ['2'], record: false })).ok).toBe(
        false,
      )
      await record(r2)
      expect((await verifyMigration({ db: db.pool, tenantIds: ['2'], record: false })).ok).toBe(
        true,
      )
    } finally {
      client.release()
    }
  })
})
