import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { pinTextSettings } from '../src/lifecycle/checksums.js'
import {
  exportTenant,
  importTenant,
  tenantChecksums,
  tenantTables,
} from '../src/lifecycle/index.js'
import { mapLines, readRaw, writeRaw } from './adversarial-archive-helpers.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'
import { buildLifecycleSource } from './helpers/lifecycle-fixture.js'

let db: TestDatabase
let dir: string
beforeAll(async () => {
  db = await createTestDatabase('adv_dup')
  await buildLifecycleSource(db.pool, 5)
  dir = await mkdtemp(join(tmpdir(), 'adv-'))
})
afterAll(async () => {
  await db?.drop()
  if (dir) await rm(dir, { recursive: true, force: true })
})

const tags = async (tenant: string) =>
  (await db.pool.query('select count(*)::int n from public.tag where tenant_id = $1', [tenant]))
    .rows[0].n

it('a table listed twice in the manifest cannot carry rows of another tenant', async () => {
  const file = join(dir, 'acme.rtar')
  await exportTenant({ db: db.pool, tenantId: 1, out: file })
  const a = await readRaw(file)
  // new tenant 500 (absent), rows re-tagged 1 -> 500 everywhere (a consistent archive)
  a.manifest.tenant = { ...a.manifest.tenant, id: '500', slug: 'evil', domains: [] }
  a.data = a.data.map((d) => mapLines(d, ([, ...r]) => ['500', ...r]))
  const i = a.manifest.tables.findIndex((t: any) => t.name === 'tag')
  // a second 'tag' section: tenant 2's rows (new ids), same count, same forged checksum
  const victim = mapLines(a.data[i]!, ([, id, ...r]) => ['2', String(Number(id) + 100000), ...r])
  a.manifest.tables.push(a.manifest.tables[i])
  a.data.push(victim)
  a.summary.tables.push(a.summary.tables[i])
  const hostile = join(dir, 'dup.rtar')
  await writeRaw(hostile, a)
  const before = await tags('2')
  const err = await importTenant({ db: db.pool, in: hostile }).then(
    (r) => r,
    (e) => e,
  )
  const after = await tags('2')
  expect({ before, after, tenant500: await tags('500') }).toEqual({
    before,
    after: before,
    tenant500: 0,
  })
  expect(err).toBeInstanceOf(Error)
})

it('--as-tenant-id: a manifest whose tenantColumn is "id" (columns reordered) cannot load rows of another tenant', async () => {
  const file = join(dir, 'acme2.rtar')
  await exportTenant({ db: db.pool, tenantId: 1, out: file })
  const a = await readRaw(file)
  const i = a.manifest.tables.findIndex((t: any) => t.name === 'tag')
  const tag = a.manifest.tables[i]
  // only the tag table (a missing table is not blocking); its columns as (id, tenant_id, label, blob)
  const cols = [tag.columns[1], tag.columns[0], ...tag.columns.slice(2)]
  a.manifest.tenantColumn = 'id'
  a.manifest.tables = [
    { ...tag, columns: cols },
    { ...tag, columns: cols },
  ]
  const legit = mapLines(a.data[i]!, ([, id, ...r]) =>
    ['1', '600', ...r].map((v, k) => (k === 2 ? `${v}-${id}` : v)),
  )
  // every row's first field ("id") is the archived tenant id '1', rewritten to 600;
  // the second field (the real tenant column) says 600 for the decoy section and 2 for the victim section
  const victim = mapLines(a.data[i]!, ([, id, ...r]) =>
    ['1', '2', ...r].map((v, k) => (k === 2 ? `${v}-${id}` : v)),
  )
  // one row per section (the id is forced to 600, so PK (tenant_id, id) allows one per tenant)
  const first = (b: Buffer) => Buffer.from(b.toString().split('\n')[0] + '\n')
  a.data = [first(victim), first(legit)]
  const before = await tags('2')
  // the checksum verifyLoaded computes (columns = archive columns minus the first: tenant_id, label, blob)
  const c = await db.pool.connect()
  let sum = ''
  try {
    await c.query('begin')
    await pinTextSettings(c)
    await c.query(`insert into public.tenants (id, slug, name) values (600, 'probe', 'p')`)
    await c.query('set local session_replication_role = replica')
    const { copyFrom } = await import('./adversarial-archive-helpers.js')
    await copyFrom(c, 'copy public.tag (id, tenant_id, label, blob) from stdin', a.data[1]!)
    const layout = {
      schema: 'public',
      tenantsSchema: 'public',
      tenantColumn: 'tenant_id',
      idType: 'bigint',
    } as const
    const t = (await tenantTables(c, layout)).tables.find((x) => x.name === 'tag')!
    const lt = {
      ...t,
      copyColumns: cols.map((x: any) => x.name),
      checksumColumns: cols.slice(1).map((x: any) => x.name),
    }
    sum = (await tenantChecksums(c, layout, '600', [lt]))[0]!.checksum
  } finally {
    await c.query('rollback')
    c.release()
  }
  a.summary.tables = [
    { table: 'tag', rows: 1, checksum: sum },
    { table: 'tag', rows: 1, checksum: sum },
  ]
  const probe = join(dir, 'probe.rtar')
  await writeRaw(probe, a)
  const e2 = await importTenant({ db: db.pool, in: probe, asTenantId: '600' }).catch((e) => e)
  expect(e2).toBeInstanceOf(Error)
  expect(String(e2.message)).toMatch(/more than once|tenant column|another tenant|not all tenant/)
  expect(await tags('2')).toBe(before)
})

it('--replace with a manifest naming another tenant id (slug of acme, id of globex) does not erase globex', async () => {
  const file = join(dir, 'acme3.rtar')
  await exportTenant({ db: db.pool, tenantId: 1, out: file })
  const a = await readRaw(file)
  a.manifest.tenant = { ...a.manifest.tenant, id: '3', domains: [] }
  a.data = a.data.map((d) => mapLines(d, ([, ...r]) => ['3', ...r]))
  const hostile = join(dir, 'replace.rtar')
  await writeRaw(hostile, a)
  const before = (await db.pool.query('select slug from tenants where id = 3')).rows[0]
  const r = await importTenant({ db: db.pool, in: hostile, replace: true }).catch((e) => e)
  expect(String(r.message)).toMatch(/replace erases only the same tenant/)
  const after = (await db.pool.query('select slug from tenants where id = 3')).rows[0]
  expect(after).toEqual(before)
})

it('extra table with SQL in its name, a negative count, a huge count, a bad row late: clear errors, nothing written', async () => {
  const file = join(dir, 'acme4.rtar')
  await exportTenant({ db: db.pool, tenantId: 1, out: file })
  const base = await readRaw(file)
  const fresh = () =>
    structuredClone({
      ...base,
      data: base.data.map((d) => mapLines(d, ([, ...r]) => ['700', ...r])),
    }) as typeof base
  const variants: Record<string, (a: typeof base) => void> = {
    sqlName: (a) => {
      a.manifest.tables.push({
        name: 'tag"; drop table public.tag; --',
        columns: [{ name: 'tenant_id', type: 'bigint' }],
      })
      a.data.push(Buffer.from('700\n'))
      a.summary.tables.push({ table: 'tag"; drop table public.tag; --', rows: 1, checksum: '0' })
    },
    negative: (a) => {
      a.summary.tables[0].rows = -1
    },
    huge: (a) => {
      a.summary.tables[0].rows = 2 ** 60
    },
    badLastRow: (a) => {
      const k = a.data.length - 1
      a.data[k] = Buffer.concat([a.data[k]!, Buffer.from('700\tnot-a-number\n')])
    },
    badColumn: (a) => {
      a.manifest.tables[0].columns.push({ name: 'x) ; drop table public.tag; --', type: 'text' })
    },
  }
  const count = async () => (await db.pool.query('select count(*)::int n from tenants')).rows[0].n
  const before = await count()
  for (const [name, edit] of Object.entries(variants)) {
    const a = fresh()
    a.manifest.tenant = { ...a.manifest.tenant, id: '700', slug: 'v700', domains: [] }
    edit(a)
    const f = join(dir, `${name}.rtar`)
    await writeRaw(f, a)
    const e = await importTenant({ db: db.pool, in: f }).catch((x) => x)
    expect(e).toBeInstanceOf(Error)
    expect(await count()).toBe(before)
  }
  expect((await db.pool.query("select to_regclass('public.tag') is not null ok")).rows[0].ok).toBe(
    true,
  )
})

it('a crafted tenant row (slug, status, time, domains) or a bad --slug: a clear error, nothing written', async () => {
  const file = join(dir, 'acme-row.rtar')
  await exportTenant({ db: db.pool, tenantId: 1, out: file })
  const base = await readRaw(file)
  const count = async () => (await db.pool.query('select count(*)::int n from tenants')).rows[0].n
  const domains = async () =>
    (await db.pool.query('select count(*)::int n from tenant_domains')).rows[0].n
  const before = [await count(), await domains()]
  const variants: Record<string, Record<string, unknown>> = {
    slug: { slug: 'Not A Slug' },
    status: { status: 'deleted' },
    createdAt: { createdAt: 'yesterday' },
    domainsText: { domains: 'ab' },
    domainUnnormalized: { domains: [{ domain: 'Shop.Example.com.', isPrimary: false }] },
    domainNoFlag: { domains: [{ domain: 'shop.example.com' }] },
  }
  for (const [name, tenant] of Object.entries(variants)) {
    const a = structuredClone(base)
    a.manifest.tenant = { ...a.manifest.tenant, id: '701', slug: 'v701', ...tenant }
    const f = join(dir, `row-${name}.rtar`)
    await writeRaw(f, a)
    await expect(importTenant({ db: db.pool, in: f, asTenantId: '701' }), name).rejects.toThrow(
      /The archive manifest is invalid: its tenant/,
    )
  }
  await expect(
    importTenant({ db: db.pool, in: file, asTenantId: '702', slug: 'Bad Slug' }),
  ).rejects.toThrow(/Invalid tenant slug/)
  await expect(
    importTenant({ db: db.pool, in: file, asTenantId: '702', slug: 'Acme2' }),
  ).rejects.toThrow(/canonical form \("acme2"\)/)
  expect([await count(), await domains()]).toEqual(before)
})
