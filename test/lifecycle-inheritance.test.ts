/**
 * A tenant table with an inheritance child (`create table hist_2024 () inherits (hist)`, both
 * under row level security): the parent read without ONLY holds the child's rows too, so the
 * export wrote them twice (under `hist` and under `hist_2024`), the import loaded them twice,
 * and its checks refused every such archive: the tenant could not be moved. Each table is
 * read, counted and erased by its own rows (ONLY), as the migration reads its sources.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { eraseTenant, exportTenant, importTenant } from '../src/lifecycle/index.js'
import { enableRls } from '../src/schema/rls-apply.js'
import { installTenantTables } from '../src/tenants/index.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'

let source: TestDatabase
let target: TestDatabase
let dir: string

const DDL = `
  create table hist (tenant_id bigint not null references tenants (id), id bigint not null, body text,
    primary key (tenant_id, id));
  create table hist_2024 (primary key (tenant_id, id)) inherits (hist);`

beforeAll(async () => {
  source = await createTestDatabase('life_inh_src')
  target = await createTestDatabase('life_inh_tgt')
  dir = await mkdtemp(join(tmpdir(), 'life-inh-'))
  for (const db of [source, target]) {
    await installTenantTables(db.pool, { idType: 'bigint' })
    await db.pool.query(DDL)
    await enableRls(db.pool, [{ name: 'hist' }])
  }
  await source.pool.query(`
    insert into tenants (id, slug, name) values (1, 'one', 'One'), (2, 'two', 'Two');
    insert into hist values (1, 1, 'old one'), (2, 1, 'old two');
    insert into hist_2024 values (1, 2, 'new one'), (2, 2, 'new two');`)
}, 60_000)

afterAll(async () => {
  await source?.drop()
  await target?.drop()
  if (dir) await rm(dir, { recursive: true, force: true })
})

const rowsOf = async (db: TestDatabase, table: string) =>
  (
    await db.pool.query(
      `select tenant_id::text || ':' || id || ':' || body as r from only ${table} order by 1`,
    )
  ).rows.map((r) => r.r)

it('a tenant with rows in a parent and its inheritance child exports, imports and erases exactly', async () => {
  const file = join(dir, 'one.rtar')
  const exported = await exportTenant({ db: source.pool, tenantId: '1', out: file })
  expect(exported.manifest.tables.map((t) => [t.name, t.rows])).toEqual([
    ['hist', 1],
    ['hist_2024', 1],
  ])
  await importTenant({ db: target.pool, in: file })
  expect(await rowsOf(target, 'hist')).toEqual(['1:1:old one'])
  expect(await rowsOf(target, 'hist_2024')).toEqual(['1:2:new one'])
  const erased = await eraseTenant({ db: source.pool, tenantId: '1' })
  expect(erased.tables.map((t) => [t.table, t.rows, t.rowsAfter])).toEqual([
    ['hist', 1, 0],
    ['hist_2024', 1, 0],
  ])
  expect(await rowsOf(source, 'hist')).toEqual(['2:1:old two'])
  expect(await rowsOf(source, 'hist_2024')).toEqual(['2:2:new two'])
})

it('a child with neither a key to tenants nor a policy is still the tenant table its rows are in', async () => {
  await source.pool.query(`
    create table hist_2025 (primary key (tenant_id, id)) inherits (hist);
    insert into tenants (id, slug, name) values (3, 'three', 'Three');
    insert into hist values (3, 1, 'old three');
    insert into hist_2025 values (3, 3, 'newest three'), (2, 3, 'newest two');`)
  const file = join(dir, 'three.rtar')
  const exported = await exportTenant({ db: source.pool, tenantId: '3', out: file })
  expect(exported.manifest.tables.map((t) => [t.name, t.rows])).toEqual([
    ['hist', 1],
    ['hist_2024', 0],
    ['hist_2025', 1],
  ])
  const erased = await eraseTenant({ db: source.pool, tenantId: '3' })
  expect(erased.tables.map((t) => [t.table, t.rows, t.rowsAfter])).toEqual([
    ['hist', 1, 0],
    ['hist_2024', 0, 0],
    ['hist_2025', 1, 0],
  ])
  expect(await rowsOf(source, 'hist_2025')).toEqual(['2:3:newest two'])
  await source.pool.query('drop table hist_2025')
})

it('a child in another schema is refused, not left behind', async () => {
  await source.pool.query(`
    create schema archive;
    create table archive.hist_old (primary key (tenant_id, id)) inherits (public.hist);
    insert into archive.hist_old values (2, 9, 'archived two');`)
  try {
    await expect(eraseTenant({ db: source.pool, tenantId: '2' })).rejects.toThrow(
      /inheritance children in other schemas \(archive\.hist_old\)/,
    )
    expect(await rowsOf(source, 'archive.hist_old')).toEqual(['2:9:archived two'])
  } finally {
    await source.pool.query('drop schema archive cascade')
  }
})
