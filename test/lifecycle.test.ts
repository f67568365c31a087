import { lstat, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { installAuditLog } from '../src/audit/index.js'
import { LifecycleError } from '../src/errors/index.js'
import {
  eraseTenant,
  exportTenant,
  importTenant,
  tenantChecksums,
  tenantTables,
} from '../src/lifecycle/index.js'
import { cli } from './helpers/cli.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'
import {
  buildLifecycleSource,
  buildLifecycleTarget,
  rowsByTenant,
} from './helpers/lifecycle-fixture.js'

let source: TestDatabase
let target: TestDatabase
let dir: string
const layout = {
  schema: 'public',
  tenantsSchema: 'public',
  tenantColumn: 'tenant_id',
  idType: 'bigint',
} as const

async function sums(db: TestDatabase, id: string) {
  const c = await db.pool.connect()
  try {
    await c.query('begin')
    await c.query("select set_config('TimeZone', 'UTC', true)")
    const { tables } = await tenantTables(c, layout)
    return await tenantChecksums(c, layout, id, tables)
  } finally {
    await c.query('rollback')
    c.release()
  }
}

async function tenantIds(db: TestDatabase): Promise<string[]> {
  return (await db.pool.query('select id::text from tenants order by id')).rows.map((r) => r.id)
}

beforeAll(async () => {
  source = await createTestDatabase('life_src')
  target = await createTestDatabase('life_dst')
  await buildLifecycleSource(source.pool)
  await buildLifecycleTarget(target.pool)
  await installAuditLog(source.pool)
  dir = await mkdtemp(join(tmpdir(), 'rt-lifecycle-'))
})
afterAll(async () => {
  await source?.drop()
  await target?.drop()
  if (dir) await rm(dir, { recursive: true, force: true })
})

describe('export -> import', () => {
  it('the archive is readable by its owner alone, and a link at its partial path is not written through', async () => {
    const file = join(dir, 'private.rtar')
    const bait = join(dir, 'bait.txt')
    await writeFile(bait, 'not yours')
    // someone else's link where the export writes its partial file (the default work dir is /tmp)
    await symlink(bait, `${file}.partial`)
    await exportTenant({ db: source.pool, tenantId: '2', out: file })
    expect((await stat(file)).mode & 0o077).toBe(0)
    expect((await lstat(file)).isSymbolicLink()).toBe(false)
    expect(await readFile(bait, 'utf8')).toBe('not yours')
  })

  it('round-trips the hostile tenant (hostile names, a cycle, a partitioned table, bytea) into an empty database with identical checksums', async () => {
    const file = join(dir, 'weird.rtar')
    const events: string[] = []
    const exported = await exportTenant({
      db: source.pool,
      tenantId: '3',
      out: file,
      onEvent: (e) => events.push(e.type),
    })
    expect(events[0]).toBe('start')
    expect(events.at(-1)).toBe('done')
    expect(exported.manifest.tables.map((t) => t.name)).toContain('odd.tab"le ü')
    expect(exported.manifest.cyclic).toEqual(['author', 'book'])
    expect((await stat(file)).size).toBe(exported.bytes)
    const imported = await importTenant({ db: target.pool, in: file })
    expect(imported.tenantId).toBe('3')
    const want = await sums(source, '3')
    expect(await sums(target, '3')).toEqual(want)
    expect(imported.tables).toEqual(want)
    expect(want.find((t) => t.table === 'tag')?.rows).toBeGreaterThan(0)
    const t = (await target.pool.query('select slug, name, status from tenants where id = 3'))
      .rows[0]
    expect(t).toEqual({ slug: 'we-ird-schema-u', name: 'Weird & Co', status: 'active' })
    // bytea survives byte for byte
    const blob = async (db: TestDatabase) =>
      (
        await db.pool.query(
          "select string_agg(encode(blob, 'hex'), ',' order by id) as b from tag where tenant_id = 3",
        )
      ).rows[0].b
    expect(await blob(target)).toBe(await blob(source))
    // sequences moved above the imported ids
    const seq = await target.pool.query(
      "select last_value::int as v from pg_sequences where sequencename = 'book_id_seq'",
    )
    const max = await target.pool.query('select max(id)::int as m from book')
    expect(seq.rows[0].v).toBeGreaterThanOrEqual(max.rows[0].m)
  })

  it('round-trips tenant 1 with its domains', async () => {
    const file = join(dir, 'acme.rtar')
    await exportTenant({ db: source.pool, tenantId: 1, out: file })
    await importTenant({ db: target.pool, in: file })
    expect(await sums(target, '1')).toEqual(await sums(source, '1'))
    const d = await target.pool.query(
      'select domain from tenant_domains where tenant_id = 1 order by 1',
    )
    expect(d.rows.map((r) => r.domain)).toEqual(['acme.example.com', 'www.acme.example.com'])
  })

  it('imports under another id next to the original (tenant column rewritten, slug suffixed, domains kept by the original)', async () => {
    const file = join(dir, 'acme.rtar')
    const before = await rowsByTenant(source.pool)
    const r = await importTenant({ db: source.pool, in: file, asTenantId: '77' })
    expect(r.slug).toBe('acme-77')
    expect(r.skippedDomains).toEqual(['acme.example.com', 'www.acme.example.com'])
    expect(await sums(source, '77')).toEqual(await sums(source, '1'))
    const after = await rowsByTenant(source.pool)
    for (const [k, v] of Object.entries(before)) expect(after[k], k).toBe(v)
    expect(Object.keys(after).some((k) => k.endsWith('@77'))).toBe(true)
  })

  it('refuses an existing tenant, and --replace erases it first in the same transaction', async () => {
    const file = join(dir, 'acme.rtar')
    await expect(importTenant({ db: target.pool, in: file })).rejects.toThrow(
      /already exists.*--replace/s,
    )
    await target.pool.query(
      "update finance_account set name = 'changed' where tenant_id = 1 and id = 1",
    )
    const r = await importTenant({ db: target.pool, in: file, replace: true })
    expect(r.replaced).toBe(true)
    expect(await sums(target, '1')).toEqual(await sums(source, '1'))
  })
})

describe('erase', () => {
  it('--dry-run counts and deletes nothing', async () => {
    const before = await rowsByTenant(source.pool)
    const cert = await eraseTenant({ db: source.pool, tenantId: '77', dryRun: true })
    expect(cert.dryRun).toBe(true)
    expect(cert.tables.reduce((n, t) => n + t.rows, 0)).toBeGreaterThan(0)
    expect(await rowsByTenant(source.pool)).toEqual(before)
  })

  it('deletes every row of the tenant, its domains and row; other tenants are unchanged; certificate + audit record', async () => {
    const before = await rowsByTenant(source.pool)
    const sumsBefore = await sums(source, '77')
    const cert = await eraseTenant({
      db: source.pool,
      tenantId: '77',
      actor: 'dpo@example.com',
      reason: 'GDPR art. 17',
    })
    expect(cert.tables.map(({ table, rows, checksum }) => ({ table, rows, checksum }))).toEqual(
      sumsBefore,
    )
    expect(cert.tables.every((t) => t.rowsAfter === 0)).toBe(true)
    expect(cert.tenantRowErased).toBe(true)
    expect(cert.actor).toBe('dpo@example.com')
    const after = await rowsByTenant(source.pool)
    for (const [k, v] of Object.entries(before)) {
      if (k.endsWith('@77')) expect(after[k]).toBeUndefined()
      else expect(after[k], k).toBe(v)
    }
    expect(await tenantIds(source)).toEqual(['1', '2', '3'])
    const audit = await source.pool.query(
      "select reason, actor, row_count from audit_log where reason = 'GDPR art. 17'",
    )
    expect(audit.rows).toEqual([
      { reason: 'GDPR art. 17', actor: 'dpo@example.com', row_count: expect.anything() },
    ])
  })
})

describe('bad input: a clear error, nothing written', () => {
  it('an unknown tenant: TenantNotFoundError and no file', async () => {
    const file = join(dir, 'nobody.rtar')
    await expect(exportTenant({ db: source.pool, tenantId: '999', out: file })).rejects.toThrow(
      /999/,
    )
    await expect(stat(file)).rejects.toThrow()
    await expect(stat(`${file}.partial`)).rejects.toThrow()
    await expect(eraseTenant({ db: source.pool, tenantId: '999' })).rejects.toThrow(/999/)
  })

  it('a tenant id of the wrong type', async () => {
    await expect(
      exportTenant({ db: source.pool, tenantId: 'acme', out: join(dir, 'x') }),
    ).rejects.toThrow(/integer/)
    await expect(
      importTenant({
        db: target.pool,
        in: join(dir, 'acme.rtar'),
        asTenantId: 'x; drop table tenants',
      }),
    ).rejects.toThrow(/integer/)
  })

  it('a truncated archive, an edited byte, a missing file', async () => {
    const bytes = await readFile(join(dir, 'weird.rtar'))
    const ids = await tenantIds(target)
    const state = await rowsByTenant(target.pool)
    const truncated = join(dir, 'truncated.rtar')
    await writeFile(truncated, bytes.subarray(0, Math.floor(bytes.length * 0.7)))
    await expect(
      importTenant({ db: target.pool, in: truncated, asTenantId: '50' }),
    ).rejects.toThrow(LifecycleError)
    await expect(
      importTenant({ db: target.pool, in: truncated, asTenantId: '50' }),
    ).rejects.toThrow(/truncated|damaged/)
    const edited = Buffer.from(bytes)
    const at = edited.indexOf('Author "3"')
    edited[at + 8] = '4'.charCodeAt(0)
    const editedFile = join(dir, 'edited.rtar')
    await writeFile(editedFile, edited)
    await expect(
      importTenant({ db: target.pool, in: editedFile, asTenantId: '51' }),
    ).rejects.toThrow(/edited/)
    const summaryEdit = Buffer.from(bytes)
    const m = summaryEdit.lastIndexOf('"rows":')
    summaryEdit[m + 7] = summaryEdit[m + 7] === 57 ? 56 : summaryEdit[m + 7]! + 1
    await writeFile(editedFile, summaryEdit)
    await expect(
      importTenant({ db: target.pool, in: editedFile, asTenantId: '52' }),
    ).rejects.toThrow(/summary.*edited/)
    const headEdit = Buffer.from(bytes)
    const h = headEdit.indexOf('"we-ird-schema-u"')
    headEdit[h + 1] = 'x'.charCodeAt(0)
    await writeFile(editedFile, headEdit)
    await expect(
      importTenant({ db: target.pool, in: editedFile, asTenantId: '53' }),
    ).rejects.toThrow(/manifest.*edited/)
    await expect(importTenant({ db: target.pool, in: join(dir, 'missing.rtar') })).rejects.toThrow(
      /Cannot read/,
    )
    expect(await tenantIds(target)).toEqual(ids)
    expect(await rowsByTenant(target.pool)).toEqual(state)
  })

  it('an incompatible schema: drift listed as the migration lists it, nothing written', async () => {
    const other = await createTestDatabase('life_drift')
    try {
      await buildLifecycleTarget(other.pool)
      await other.pool.query('alter table book drop column title')
      await other.pool.query('alter table film alter column title type int using 0')
      const err = await importTenant({ db: other.pool, in: join(dir, 'acme.rtar') }).catch((e) => e)
      expect(err).toBeInstanceOf(LifecycleError)
      expect(err.message).toMatch(/book\.title \(text\) has no column in public\.book/)
      expect(err.message).toMatch(/film\.title is text but public\.film\.title is integer/)
      expect(await tenantIds(other)).toEqual([])
    } finally {
      await other.drop()
    }
  })
})

describe('CLI: rowtenancy tenants export|import|erase', () => {
  it('exports, imports under another id, erases with --yes, and exits 1 on bad input', async () => {
    const file = join(dir, 'cli.rtar')
    const url = source.url
    const ex = await cli([
      'tenants',
      'export',
      '--tenant-id',
      '2',
      '--out',
      file,
      '--database-url',
      url,
      '--json',
    ])
    expect(ex.code, ex.stderr).toBe(0)
    expect(JSON.parse(ex.stdout.trim().split('\n').at(-1)!).tenant.id).toBe('2')
    const im = await cli([
      'tenants',
      'import',
      '--in',
      file,
      '--as-tenant-id',
      '88',
      '--database-url',
      url,
      '--json',
    ])
    expect(im.code, im.stderr).toBe(0)
    expect(await sums(source, '88')).toEqual(await sums(source, '2'))
    const noYes = await cli(['tenants', 'erase', '--tenant-id', '88', '--database-url', url])
    expect(noYes.code).not.toBe(0)
    // a certificate that cannot be written: refused before anything is erased
    for (const where of [join(dir, 'no-such-dir', 'cert.json'), dir]) {
      const unwritable = await cli([
        'tenants',
        'erase',
        '--tenant-id',
        '88',
        '--yes',
        '--certificate',
        where,
        '--database-url',
        url,
      ])
      expect(unwritable.code).toBe(1)
      expect(unwritable.stderr).toMatch(/INVALID_INPUT.*certificate.*nothing was erased/s)
      expect(await sums(source, '88')).toEqual(await sums(source, '2'))
    }
    const certFile = join(dir, 'cert.json')
    const er = await cli([
      'tenants',
      'erase',
      '--tenant-id',
      '88',
      '--yes',
      '--certificate',
      certFile,
      '--database-url',
      url,
    ])
    expect(er.code, er.stderr).toBe(0)
    const cert = JSON.parse(await readFile(certFile, 'utf8'))
    expect(cert.kind).toBe('rowtenancy-erasure-certificate')
    expect(cert.tenant.id).toBe('88')
    const bad = await cli([
      'tenants',
      'import',
      '--in',
      join(dir, 'truncated.rtar'),
      '--database-url',
      url,
    ])
    expect(bad.code).toBe(1)
    expect(bad.stderr).toMatch(/LIFECYCLE_ERROR/)
    const unknown = await cli([
      'tenants',
      'export',
      '--tenant-id',
      '404',
      '--out',
      join(dir, 'u.rtar'),
      '--database-url',
      url,
    ])
    expect(unknown.code).toBe(1)
    expect(await tenantIds(source)).toEqual(['1', '2', '3'])
  })
})
