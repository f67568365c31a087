import { afterAll, beforeAll, expect, it } from 'vitest'
import { migrate, verifyMigration } from '../src/entries/migrate.js'
import { installTenantTables } from '../src/tenants/install.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'

/**
 * A column widened by the target (real -> double precision, in a domain, in an array) keeps
 * the source's value: the copy went through the value's text, and `0.1::real` printed as `0.1`
 * is read back as the double 0.1, not as the real's own value 0.100000001490116..., so the copied
 * row no longer equals its source (`=` compares the widened real), and verify, hashing the same
 * text round trip on both sides, found nothing.
 */

let db: TestDatabase

beforeAll(async () => {
  db = await createTestDatabase('migrate_widening')
  await installTenantTables(db.pool, { idType: 'bigint' })
  await db.pool.query(`
    create table public.customers_client (id int primary key, schema_name text not null unique, name text not null);
    insert into public.customers_client values (1, 'tenant_1', 'One');
    create table public.m (tenant_id bigint not null references public.tenants (id), id int not null,
      r double precision, d double precision, a double precision[], i bigint, n numeric,
      primary key (tenant_id, id));
    create schema tenant_1;
    create domain tenant_1.small_real as real;
    create table tenant_1.m (id int primary key, r real, d tenant_1.small_real, a real[], i int, n int);
    insert into tenant_1.m values (1, 0.1, 1.2345678, '{0.1,3.4e38}', 7, -2147483648),
      (2, 3.4e38, -0.1, '{}', null, 0), (3, 'NaN', '-Infinity', '{NaN}', -1, 2147483647);`)
}, 60_000)
afterAll(async () => {
  db?.pool.on('error', () => {})
  await db?.drop()
})

it('a widened column keeps the value of the source (not the value of its text)', async () => {
  const report = await migrate({
    db: db.pool,
    all: true,
    source: { legacyTenantsTable: 'public.customers_client' },
  })
  expect(report.ok, JSON.stringify(report.tenants)).toBe(true)
  const { rows } = await db.pool.query(`
    select s.id from tenant_1.m s join public.m t on t.tenant_id = 1 and t.id = s.id
     where t.r is not distinct from s.r and t.d is not distinct from s.d::real
       and t.a is not distinct from s.a::float8[] and t.i is not distinct from s.i and t.n is not distinct from s.n
     order by 1`)
  expect(rows.map((r) => r.id)).toEqual([1, 2, 3])
  expect((await verifyMigration({ db: db.pool, tenantIds: ['1'], record: false })).ok).toBe(true)
})
