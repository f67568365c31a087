import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { InvalidInputError, LifecycleError } from '../src/errors/index.js'
import { exportTenant, importTenant, readArchiveManifest } from '../src/lifecycle/index.js'
import { mapLines, readRaw, writeRaw } from './adversarial-archive-helpers.js'
import { cli } from './helpers/cli.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'
import { buildLifecycleSource, rowsByTenant } from './helpers/lifecycle-fixture.js'

const KEY = 'archive-key-0123456789abcdef'
let db: TestDatabase
let dir: string
let signed: string
beforeAll(async () => {
  db = await createTestDatabase('signed_archive')
  await buildLifecycleSource(db.pool, 5)
  dir = await mkdtemp(join(tmpdir(), 'signed-'))
  signed = join(dir, 'acme-signed.rtar')
  await exportTenant({ db: db.pool, tenantId: 1, out: signed, archiveKey: KEY })
})
afterAll(async () => {
  await db?.drop()
  if (dir) await rm(dir, { recursive: true, force: true })
})

/** The refusal of an import, with the database's rows per tenant before and after it. */
async function refused(options: Parameters<typeof importTenant>[0]) {
  const before = await rowsByTenant(db.pool)
  const err = await importTenant(options).then(
    () => undefined,
    (e: Error) => e,
  )
  return { err, unchanged: JSON.stringify(await rowsByTenant(db.pool)) === JSON.stringify(before) }
}

describe('signed archives (archiveKey)', () => {
  it('a signed archive imports with its key (signature verified) and without it (not checked)', async () => {
    const withKey = await importTenant({
      db: db.pool,
      in: signed,
      asTenantId: 100,
      archiveKey: KEY,
    })
    expect(withKey.signature).toBe('verified')
    const without = await importTenant({ db: db.pool, in: signed, asTenantId: 101 })
    expect(without.signature).toBe('not-checked')
    const rows = await rowsByTenant(db.pool)
    expect(rows['100']).toBe(rows['1'])
    expect(rows['101']).toBe(rows['1'])
    const plain = join(dir, 'plain.rtar')
    await exportTenant({ db: db.pool, tenantId: 1, out: plain })
    expect((await importTenant({ db: db.pool, in: plain, asTenantId: 102 })).signature).toBe(
      'unsigned',
    )
  })

  it('with a key, a forged archive naming another tenant (id and slug) under replace is refused, nothing erased', async () => {
    const a = await readRaw(signed)
    const globex = (await db.pool.query('select slug from tenants where id = 2')).rows[0].slug
    a.manifest.tenant = { ...a.manifest.tenant, id: '2', slug: globex, domains: [] }
    a.data = a.data.map((d) => mapLines(d, ([, ...r]) => ['2', ...r]))
    const unsigned = join(dir, 'forged.rtar')
    await writeRaw(unsigned, a)
    const otherKey = join(dir, 'forged-other-key.rtar')
    await writeRaw(otherKey, a, Buffer.from('another-key-0123456789abcdef'))
    const noSig = await refused({ db: db.pool, in: unsigned, replace: true, archiveKey: KEY })
    expect(noSig.err).toBeInstanceOf(LifecycleError)
    expect(noSig.err?.message).toMatch(/not signed, and an archive key is set/)
    expect(noSig.unchanged).toBe(true)
    const wrong = await refused({ db: db.pool, in: otherKey, replace: true, archiveKey: KEY })
    expect(wrong.err?.message).toMatch(/signature does not match/)
    expect(wrong.unchanged).toBe(true)
    // refused before any database work: a server that cannot be reached is never asked
    const nowhere = new pg.Pool({
      connectionString: 'postgres://postgres@127.0.0.1:1/none',
      max: 1,
    })
    try {
      const e = await importTenant({
        db: nowhere,
        in: unsigned,
        replace: true,
        archiveKey: KEY,
      }).catch((x) => x)
      expect(e.message).toMatch(/not signed, and an archive key is set/)
    } finally {
      await nowhere.end()
    }
  })

  it('a signed archive edited anywhere, its signature line cut or changed, or bytes after it: refused', async () => {
    const bytes = await readFile(signed)
    const text = bytes.toString('latin1')
    const kAt = text.lastIndexOf('\nK hmac-sha256 ') + 1
    const cases: [string, Buffer][] = [
      ['cut', bytes.subarray(0, kAt)],
      [
        'flipped',
        Buffer.concat([bytes.subarray(0, -2), Buffer.from(text.at(-2) === '0' ? '1\n' : '0\n')]),
      ],
      ['trailing', Buffer.concat([bytes, Buffer.from('K hmac-sha256 ' + '0'.repeat(64) + '\n')])],
      ['no newline', bytes.subarray(0, -1)],
    ]
    for (const [name, body] of cases) {
      const file = join(dir, `${name}.rtar`)
      await writeFile(file, body)
      const r = await refused({ db: db.pool, in: file, asTenantId: 103, archiveKey: KEY })
      expect(r.err, name).toBeInstanceOf(LifecycleError)
      expect(r.unchanged, name).toBe(true)
    }
    // without a key, a damaged signature line still refuses the archive: only a well-formed one is "not checked"
    const file = join(dir, 'trailing.rtar')
    const r = await refused({ db: db.pool, in: file, asTenantId: 104 })
    expect(r.err?.message).toMatch(/its signature line is malformed/)
  })

  it('readArchiveManifest with a key refuses an unsigned archive and reads a signed one', async () => {
    const plain = join(dir, 'plain2.rtar')
    await exportTenant({ db: db.pool, tenantId: 1, out: plain })
    await expect(readArchiveManifest(plain, KEY)).rejects.toThrow(/not signed/)
    expect((await readArchiveManifest(signed, KEY)).tenant.id).toBe('1')
  })

  it('a key shorter than 16 bytes is refused before anything is written or read', async () => {
    const out = join(dir, 'short.rtar')
    const e = await exportTenant({ db: db.pool, tenantId: 1, out, archiveKey: 'short' }).catch(
      (x) => x,
    )
    expect(e).toBeInstanceOf(InvalidInputError)
    expect(e.message).toMatch(/at least 16 bytes/)
    expect(existsSync(out) || existsSync(`${out}.partial`)).toBe(false)
    const r = await refused({
      db: db.pool,
      in: signed,
      asTenantId: 105,
      archiveKey: new Uint8Array(8),
    })
    expect(r.err).toBeInstanceOf(InvalidInputError)
    expect(r.unchanged).toBe(true)
  })
})

describe('CLI: ROWTENANCY_ARCHIVE_KEY', () => {
  const withKey = async <T>(key: string | undefined, fn: () => Promise<T>): Promise<T> => {
    const previous = process.env.ROWTENANCY_ARCHIVE_KEY
    if (key === undefined) delete process.env.ROWTENANCY_ARCHIVE_KEY
    else process.env.ROWTENANCY_ARCHIVE_KEY = key
    try {
      return await fn()
    } finally {
      if (previous === undefined) delete process.env.ROWTENANCY_ARCHIVE_KEY
      else process.env.ROWTENANCY_ARCHIVE_KEY = previous
    }
  }
  const run = (...args: string[]) => cli(['tenants', ...args, '--database-url', db.url])

  it('export signs, import verifies, an unsigned archive is refused, a short key exits 1 changing nothing', async () => {
    const file = join(dir, 'cli-signed.rtar')
    const ex = await withKey(KEY, () => run('export', '--tenant-id', '1', '--out', file))
    expect(ex.code, ex.stderr).toBe(0)
    expect(ex.stdout).toMatch(/signed with ROWTENANCY_ARCHIVE_KEY/)
    const im = await withKey(KEY, () => run('import', '--in', file, '--as-tenant-id', '110'))
    expect(im.code, im.stderr).toBe(0)
    expect(im.stdout).toMatch(/signature verified/)
    const unchecked = await withKey(undefined, () =>
      run('import', '--in', file, '--as-tenant-id', '111'),
    )
    expect(unchecked.code, unchecked.stderr).toBe(0)
    expect(unchecked.stderr).toMatch(/signature line, not checked/)

    const plain = join(dir, 'cli-plain.rtar')
    expect(
      (await withKey(undefined, () => run('export', '--tenant-id', '1', '--out', plain))).code,
    ).toBe(0)
    const before = await rowsByTenant(db.pool)
    const no = await withKey(KEY, () => run('import', '--in', plain, '--as-tenant-id', '112'))
    expect(no.code).toBe(1)
    expect(no.stderr).toMatch(/not signed, and an archive key is set/)
    const short = await withKey('short', () => run('import', '--in', file, '--as-tenant-id', '113'))
    expect(short.code).toBe(1)
    expect(short.stderr).toMatch(/ROWTENANCY_ARCHIVE_KEY is set but shorter than 16 bytes/)
    const shortOut = join(dir, 'cli-short.rtar')
    const shortEx = await withKey('short', () =>
      run('export', '--tenant-id', '1', '--out', shortOut),
    )
    expect(shortEx.code).toBe(1)
    expect(existsSync(shortOut)).toBe(false)
    expect(await rowsByTenant(db.pool)).toEqual(before)
  })
})
