/**
 * Outside row level security: large objects. A tenant-aware table that keeps file contents as
 * large objects (an `oid` column) keeps the row apart, not the file: the large object belongs to
 * the role that created it, the one runtime role every tenant's code runs as, and
 * `pg_largeobject_metadata` lists every id to every role. Hostile raw SQL bound to tenant 1
 * reads, overwrites and unlinks tenant 2's file. doctor reports it (`LARGE_OBJECT_OUTSIDE_RLS`).
 */
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { runDoctor } from '../src/doctor/index.js'
import { withTenantClient } from '../src/entries/pg.js'
import { enableRls } from '../src/schema/rls-apply.js'
import { grantRuntimeRole } from '../src/schema/roles.js'
import { installTenantTables } from '../src/tenants/index.js'
import { createTestDatabase, dropRoles, type TestDatabase } from './helpers/db.js'

const ROLE = `adv_lo_${randomBytes(3).toString('hex')}`
let db: TestDatabase
let runtime: pg.Pool

beforeAll(async () => {
  db = await createTestDatabase('adv_outside_lo')
  await installTenantTables(db.pool, { idType: 'bigint' })
  await db.pool.query(`
    insert into tenants (id, slug, name) values (1, 'one', 'One'), (2, 'two', 'Two');
    create table documents (tenant_id bigint not null references tenants (id), id bigint not null,
      name text not null, content oid not null, primary key (tenant_id, id));`)
  await enableRls(db.pool, [{ name: 'documents' }])
  await grantRuntimeRole(db.pool, { role: ROLE })
  await db.pool.query(`alter role "${ROLE}" password 'adv'`)
  const url = new URL(db.url)
  url.username = ROLE
  url.password = 'adv'
  runtime = new pg.Pool({ connectionString: url.toString(), max: 2 })
}, 60_000)

afterAll(async () => {
  await runtime?.end()
  await db?.drop()
  await dropRoles([ROLE])
})

/** Tenant 2's app stores a file the way the table says: a large object, its id in the row. */
async function tenantTwoUploads(): Promise<number> {
  return withTenantClient(
    runtime,
    async (c) => {
      const { rows } = await c.query(
        `insert into documents (tenant_id, id, name, content)
         values (2, 1, 'payroll.csv', lo_from_bytea(0, convert_to('salary,secret-2', 'UTF8')))
         returning content::int8 as oid`,
      )
      return Number(rows[0].oid)
    },
    { tenantId: '2' },
  )
}

it('tenant 1 reads (lo_get, loread), overwrites (lowrite) and unlinks the large object behind tenant 2 row (the row itself stays hidden)', async () => {
  const oid = await tenantTwoUploads()
  const stolen = await withTenantClient(
    runtime,
    async (c) => {
      const rows = await c.query('select count(*)::int as n from documents')
      // no row to follow: every id is listed, and the one runtime role owns them all
      const listed = await c.query('select oid::int8 as oid from pg_largeobject_metadata')
      const read = await c.query(
        `select convert_from(lo_get(oid), 'UTF8') as content from pg_largeobject_metadata`,
      )
      // the descriptor interface too (INV_READ | INV_WRITE = 0x60000)
      const fd = await c.query('select lo_open($1::oid, 393216) as fd', [oid])
      const chunk = await c.query(`select convert_from(loread($1, 6), 'UTF8') as s`, [
        fd.rows[0].fd,
      ])
      await c.query(`select lo_lseek($1, 0, 0), lowrite($1, convert_to('SALARY', 'UTF8'))`, [
        fd.rows[0].fd,
      ])
      return {
        rows: rows.rows[0].n,
        listed: listed.rows.map((r) => Number(r.oid)),
        read: read.rows.map((r) => r.content),
        chunk: chunk.rows[0].s,
      }
    },
    { tenantId: '1' },
  )
  expect(stolen.rows).toBe(0)
  expect(stolen.listed).toEqual([oid])
  expect(stolen.read).toEqual(['salary,secret-2'])
  expect(stolen.chunk).toBe('salary')
  const tampered = await db.pool.query(`select convert_from(lo_get($1::oid), 'UTF8') as c`, [oid])
  expect(tampered.rows[0].c).toBe('SALARY,secret-2')
  await withTenantClient(runtime, (c) => c.query('select lo_unlink($1::oid)', [oid]), {
    tenantId: '1',
  })
  const gone = await db.pool.query('select count(*)::int as n from pg_largeobject_metadata')
  expect(gone.rows[0].n).toBe(0)
  await db.pool.query('delete from documents')
})

it('server-side lo_export / lo_import stay refused to the runtime role', async () => {
  const oid = await tenantTwoUploads()
  const err = await withTenantClient(
    runtime,
    (c) => c.query(`select lo_export($1::oid, '/tmp/rowtenancy-lo-export')`, [oid]),
    { tenantId: '1' },
  ).catch((e: unknown) => e as { code?: string })
  expect((err as { code?: string }).code).toBe('42501')
  await db.pool.query('select lo_unlink(content) from documents; delete from documents')
})

it('doctor reports the oid column, and large objects the runtime role may read', async () => {
  const codes = async () =>
    (await runDoctor(db.pool, { runtimeRole: ROLE })).findings
      .filter((f) => f.code === 'LARGE_OBJECT_OUTSIDE_RLS')
      .map((f) => `${f.severity} ${f.object}`)
  // no large object yet: the column alone says where tenant files will go
  expect(await codes()).toEqual(['error public.documents.content'])
  const oid = await tenantTwoUploads()
  expect(await codes()).toEqual([
    'error public.documents.content',
    `error role ${ROLE} -> large objects`,
  ])
  // the fix: contents as bytea in the row, large objects gone
  await db.pool.query(`
    alter table documents add column body bytea;
    update documents set body = lo_get(content);
    select lo_unlink(content) from documents;
    alter table documents drop column content;`)
  expect(await codes()).toEqual([])
  // a large object of nobody's tenant table (a shared asset) is a warning, not an error
  await withTenantClient(runtime, (c) => c.query(`select lo_from_bytea(0, 'logo')`), {
    tenantId: '1',
  })
  expect(await codes()).toEqual([`warning role ${ROLE} -> large objects`])
  // owned by the owner and not granted: out of the runtime role's reach
  await db.pool.query(`select lo_from_bytea(0, 'owner only')`)
  const r = await runDoctor(db.pool, { runtimeRole: ROLE })
  expect(r.findings.find((f) => f.code === 'LARGE_OBJECT_OUTSIDE_RLS')?.message).toMatch(
    /may read 1 large object/,
  )
  expect(oid).toBeGreaterThan(0)
})
