/**
 * Hostile code: export / erase of tenant 1 must not include or touch tenant 2's rows:
 * single-column keys (remap-style ids) with a cross-tenant FK, ON DELETE CASCADE /
 * SET NULL, partitioned tables.
 */

import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { eraseTenant, exportTenant, readArchiveManifest } from '../src/lifecycle/index.js'
import { enableRls } from '../src/schema/rls-apply.js'
import { grantRuntimeRole } from '../src/schema/roles.js'
import { installTenantTables } from '../src/tenants/index.js'
import { createTestDatabase, dropRoles, type TestDatabase } from './helpers/db.js'

let db: TestDatabase
let dir: string
const ROLE = `adv_life_${randomBytes(3).toString('hex')}`

async function snapshotOf(tenant: string) {
  const q = async (t: string) =>
    (
      await db.pool.query(
        `select to_jsonb(x) as r from ${t} x where tenant_id = $1 order by 1::text`,
        [tenant],
      )
    ).rows
      .map((r) => JSON.stringify(r.r))
      .sort()
  return {
    author: await q('author'),
    book: await q('book'),
    review: await q('review'),
    ev: await q('ev'),
  }
}

beforeAll(async () => {
  db = await createTestDatabase('adv_life')
  dir = await mkdtemp(join(tmpdir(), 'adv-life-'))
  await installTenantTables(db.pool, { idType: 'bigint' })
  await db.pool.query(`
    insert into tenants (id, slug, name) values (1, 'one', 'One'), (2, 'two', 'Two');
    create table author (tenant_id bigint not null references tenants (id), id bigint primary key, name text not null);
    create table book (tenant_id bigint not null references tenants (id), id bigint primary key,
      author_id bigint references author (id) on delete cascade, title text not null);
    create table review (tenant_id bigint not null references tenants (id), id bigint primary key,
      author_id bigint references author (id) on delete set null, body text not null);
    create table ev (tenant_id bigint not null references tenants (id), id bigint not null, body text,
      primary key (tenant_id, id)) partition by list (tenant_id);
    create table ev_1 partition of ev for values in (1);
    create table ev_2 partition of ev for values in (2);
    insert into author values (1, 10, 'author of one'), (2, 20, 'author of two');
    insert into book values (1, 100, 10, 'book of one');
    insert into review values (2, 300, 10, 'review by two of author 10');
    insert into ev values (1, 1, 'ev one'), (2, 1, 'ev two');`)
  await enableRls(db.pool, [
    { name: 'author' },
    { name: 'book' },
    { name: 'review' },
    { name: 'ev' },
  ])
  await grantRuntimeRole(db.pool, { role: ROLE })
  // tenant 2's own code, on the runtime role under RLS, points a row at tenant 1's author 10
  const c = await db.pool.connect()
  try {
    await c.query('begin')
    await c.query(`set local role "${ROLE}"`)
    await c.query("select set_config('rowtenancy.tenant_id', '2', true)")
    expect((await c.query('select * from author where id = 10')).rows).toEqual([])
    await c.query(
      "insert into book values (2, 200, 10, 'book of two, citing author 10 of tenant one')",
    )
    await c.query('commit')
  } finally {
    c.release()
  }
}, 60_000)

afterAll(async () => {
  await db?.drop()
  await dropRoles([ROLE])
  if (dir) await rm(dir, { recursive: true, force: true })
})

describe('lifecycle with cross-tenant single-column keys', () => {
  it('export of tenant 1 holds only tenant 1 rows, and each table once', async () => {
    const out = join(dir, 'one.rtar')
    const res = await exportTenant({ db: db.pool, tenantId: '1', out })
    const m = await readArchiveManifest(out)
    const names = m.tables.map((t) => t.name).sort()
    expect(names).toEqual([...new Set(names)])
    const rows = Object.fromEntries(m.tables.map((t) => [t.name, t.rows]))
    expect(rows).toMatchObject({ author: 1, book: 1, ev: 1, review: 0 })
    expect(res.manifest.tenant.id).toBe('1')
  })

  it('a tenant column that is not the tenant column (id, under RLS on every table): refused, nothing exported or erased', async () => {
    // ev's rows of both tenants have id 1: read as the tenant column, tenant 2's row is "tenant 1's"
    const out = join(dir, 'by-id.rtar')
    await expect(
      exportTenant({ db: db.pool, tenantId: '1', out, tenantColumn: 'id' }),
    ).rejects.toThrow(/has "id" as its tenant column/)
    await expect(readArchiveManifest(out)).rejects.toThrow()
    const before = [await snapshotOf('1'), await snapshotOf('2')]
    await expect(
      eraseTenant({ db: db.pool, tenantId: '1', tenantColumn: 'id', dryRun: true }),
    ).rejects.toThrow(/tenant column/)
    await expect(
      eraseTenant({ db: db.pool, tenantId: '1', schema: 'nowhere', tenantsSchema: 'public' }),
    ).rejects.toThrow(/No table in schema "nowhere"/)
    expect([await snapshotOf('1'), await snapshotOf('2')]).toEqual(before)
  })

  it("erase of tenant 1 is refused while tenant 2's rows reference it: tenant 2's rows and tenant 1's stay as they were", async () => {
    const before = await snapshotOf('2')
    const mine = await snapshotOf('1')
    const dry = await eraseTenant({ db: db.pool, tenantId: '1', dryRun: true }).catch(
      (e: unknown) => e,
    )
    expect(String((dry as Error).message)).toMatch(/reference its rows/)
    const err = await eraseTenant({ db: db.pool, tenantId: '1' }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(Error)
    expect(String((err as Error).message)).toMatch(
      /Rows outside tenant 1 reference its rows: .*book/,
    )
    expect(await snapshotOf('2')).toEqual(before)
    expect(await snapshotOf('1')).toEqual(mine)
  })
})
