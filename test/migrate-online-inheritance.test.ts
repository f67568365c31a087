import { afterAll, beforeAll, expect, it } from 'vitest'
import { migrateOnline, rollbackOnline } from '../src/migrate/online/index.js'
import { installTenantTables } from '../src/tenants/install.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'

/**
 * The online path of test/migrate-inheritance.test.ts: a legacy table with an inheritance
 * child, and the same pair of shared tables. The source is read with ONLY and the copy is
 * checksummed with ONLY on the target too, but the cut-over counted the target parent without
 * it (the child's rows included): the changed-rows check never matched, and every such tenant's
 * rows were deleted and copied again inside the write fence. Moving such a tenant back read the
 * shared parent without ONLY too: the child's rows went into the legacy parent as well.
 */

let db: TestDatabase

beforeAll(async () => {
  db = await createTestDatabase('migrate_online_inherit')
  await installTenantTables(db.pool, { idType: 'bigint' })
  await db.pool.query(`
    create table public.customers_client (id int primary key, schema_name text not null unique, name text not null);
    insert into public.customers_client values (1, 'tenant_1', 'One');
    create table public.hist (tenant_id bigint not null references public.tenants (id), id int not null,
      body text, primary key (tenant_id, id));
    create table public.hist_2024 (primary key (tenant_id, id)) inherits (public.hist);
    create schema tenant_1;
    create table tenant_1.hist (id int primary key, body text);
    create table tenant_1.hist_2024 (primary key (id)) inherits (tenant_1.hist);
    insert into tenant_1.hist values (1, 'old');
    insert into tenant_1.hist_2024 values (2, 'new');
    create table public.deletes (n int not null);
    insert into public.deletes values (0);
    create function public.count_delete() returns trigger language plpgsql as
      'begin update public.deletes set n = n + 1; return old; end';
    create trigger count_delete after delete on public.hist for each row execute function public.count_delete();
    create trigger count_delete after delete on public.hist_2024 for each row execute function public.count_delete();`)
}, 60_000)
afterAll(async () => {
  db?.pool.on('error', () => {})
  await db?.drop()
})

it('a parent and its inheritance child migrate online, each with its own rows', async () => {
  const report = await migrateOnline({
    db: db.pool,
    all: true,
    source: { legacyTenantsTable: 'public.customers_client' },
  })
  expect(report.ok, JSON.stringify(report.tenants)).toBe(true)
  const own = async (t: string) =>
    (await db.pool.query(`select id, body from only public.${t} order by id`)).rows
  expect(await own('hist')).toEqual([{ id: 1, body: 'old' }])
  expect(await own('hist_2024')).toEqual([{ id: 2, body: 'new' }])
  // nothing changed since the copy: the cut-over verified the delta, it did not copy again
  expect((await db.pool.query('select n from public.deletes')).rows[0].n).toBe(0)
})

it('moves back online, each legacy table with its own rows', async () => {
  // a child made on the shared side after the cut-over, which the legacy schema does not have:
  // moving back deletes the tenant's rows of the tables it restores, not this one's
  await db.pool.query(`create table public.hist_2025 (primary key (tenant_id, id)) inherits (public.hist);
    insert into public.hist_2025 values (1, 3, 'newer')`)
  await rollbackOnline({ db: db.pool, tenantId: '1' })
  expect((await db.pool.query('select id, body from only public.hist_2025')).rows).toEqual([
    { id: 3, body: 'newer' },
  ])
  const own = async (t: string) =>
    (await db.pool.query(`select id, body from only tenant_1.${t} order by id`)).rows
  expect(await own('hist')).toEqual([{ id: 1, body: 'old' }])
  expect(await own('hist_2024')).toEqual([{ id: 2, body: 'new' }])
})
