import { existsSync } from 'node:fs'
import { readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { describe, expect, it } from 'vitest'
import { LifecycleError, TenantStore, TenantSuspendedError } from '../src/entries/index.js'
import { moveTenant } from '../src/lifecycle/index.js'
import { readRaw, writeRaw } from './adversarial-archive-helpers.js'
import { cli } from './helpers/cli.js'
import { runTsxChild } from './helpers/crash-harness.js'
import { rowsByTenant } from './helpers/lifecycle-fixture.js'
import { queryAt, tenantSums, useMoveFixture } from './helpers/move-fixture.js'

const CHILD = fileURLToPath(new URL('./helpers/move-child.ts', import.meta.url))
const fx = useMoveFixture('move')
const sums = tenantSums
const q = queryAt

/** Runs one move in a child that SIGKILLs itself at `args.crashAt` (test/helpers/move-child.ts). */
const runChild = (args: Record<string, string>) => runTsxChild(CHILD, [JSON.stringify(args)])

async function move(
  src: string,
  dst: string,
  tenantId: string,
  extra: Partial<Parameters<typeof moveTenant>[0]> = {},
) {
  const db = new pg.Pool({ connectionString: src, max: 3 })
  const to = new pg.Pool({ connectionString: dst, max: 3 })
  try {
    return await moveTenant({ db, to, toName: 'eu-2', tenantId, workDir: fx.dir, ...extra })
  } finally {
    await db.end()
    await to.end()
  }
}

/** The tenant is in exactly one place: all its rows at the destination (verified), none at the source; placed and active. */
async function expectMoved(src: string, dst: string) {
  expect(await sums(dst, '3')).toEqual(fx.original)
  expect((await sums(src, '3')).every((t) => t.rows === 0)).toBe(true)
  expect(await q(src, 'select database from tenant_placements where tenant_id = 3')).toEqual([
    { database: 'eu-2' },
  ])
  expect(await q(src, 'select status from tenants where id = 3')).toEqual([{ status: 'active' }])
  expect(await q(dst, 'select status from tenants where id = 3')).toEqual([{ status: 'active' }])
  expect(await q(src, "select state from rowtenancy_tenant_move where tenant_id = '3'")).toEqual([
    { state: 'done' },
  ])
  const p = new pg.Pool({ connectionString: src, max: 1 })
  const after = Object.fromEntries(
    Object.entries(await rowsByTenant(p)).filter(([k]) => !k.endsWith('@3')),
  )
  await p.end()
  expect(after).toEqual(fx.others)
  expect(existsSync(join(fx.dir, 'rowtenancy-move-3.rtar'))).toBe(false)
}

describe('tenants move', () => {
  it('moves a tenant: copy verified, source erased, placement switched, suspended meanwhile', async () => {
    const src = await fx.copyOf(fx.source, 'plain')
    const dst = await fx.copyOf(fx.target, 'plain')
    const seen: string[] = []
    const store = new pg.Pool({ connectionString: src, max: 1 })
    const tenants = new TenantStore({ db: store, ttlMs: 0 })
    let suspendedError: unknown
    const r = await move(src, dst, '3', {
      onStep: async (s) => {
        seen.push(s)
        if (s === 'imported') suspendedError = await tenants.requireActive('3').catch((e) => e)
      },
    })
    await store.end()
    expect(suspendedError).toBeInstanceOf(TenantSuspendedError)
    expect(seen).toEqual(['suspended', 'exported', 'imported', 'verified', 'done'])
    expect(r.tables).toEqual(fx.original)
    expect(r.certificate?.tables.every((t) => t.rowsAfter === 0)).toBe(true)
    await expectMoved(src, dst)
    // a rerun of a finished move changes nothing
    const again = await move(src, dst, '3')
    expect(again.resumed).toBe(true)
    await expectMoved(src, dst)
  })

  for (const crashAt of [
    'suspended',
    'export-table',
    'exported',
    'import-table',
    'imported',
    'verified',
    'done',
  ]) {
    it(`kill -9 at ${crashAt}, then a rerun: the tenant ends in exactly one place, verified`, async () => {
      const src = await fx.copyOf(fx.source, crashAt)
      const dst = await fx.copyOf(fx.target, crashAt)
      const child = await runChild({
        source: src,
        dest: dst,
        tenantId: '3',
        toName: 'eu-2',
        workDir: fx.dir,
        crashAt,
      })
      expect(child.signal, child.stderr).toBe('SIGKILL')
      if (crashAt !== 'done') {
        expect(await q(src, 'select status from tenants where id = 3')).toEqual([
          { status: 'suspended' },
        ])
        // never erased at the source before the destination verified
        expect(await sums(src, '3')).toEqual(fx.original)
      }
      const r = await move(src, dst, '3')
      expect(r.resumed).toBe(true)
      await expectMoved(src, dst)
    })
  }

  it('a row written at the source after the export: nothing erased, placement unchanged; the rerun copies anew', async () => {
    const src = await fx.copyOf(fx.source, 'stale')
    const dst = await fx.copyOf(fx.target, 'stale')
    const err = await move(src, dst, '3', {
      onStep: async (s) => {
        if (s === 'verified')
          await q(src, "update tag set label = 'late write' where tenant_id = 3 and id = 1")
      },
    }).catch((e) => e)
    expect(err).toBeInstanceOf(LifecycleError)
    expect(err.message).toMatch(/changed at the source after the export/)
    expect(await q(src, 'select count(*)::int as n from tenant_placements')).toEqual([{ n: 0 }])
    expect(await q(src, 'select label from tag where tenant_id = 3 and id = 1')).toEqual([
      { label: 'late write' },
    ])
    await move(src, dst, '3')
    expect(await q(dst, 'select label from tag where tenant_id = 3 and id = 1')).toEqual([
      { label: 'late write' },
    ])
    expect((await sums(src, '3')).every((t) => t.rows === 0)).toBe(true)
  })

  it('with archiveKey the archive is signed; one swapped between steps is refused, nothing at the source erased', async () => {
    const archiveKey = 'move-archive-key-0123456789'
    const archive = join(fx.dir, 'rowtenancy-move-3.rtar')
    const src = await fx.copyOf(fx.source, 'signed')
    const dst = await fx.copyOf(fx.target, 'signed')
    let tail = ''
    const err = await move(src, dst, '3', {
      archiveKey,
      onStep: async (s) => {
        if (s !== 'exported') return
        tail = (await readFile(archive, 'latin1')).slice(-80)
        await writeRaw(archive, await readRaw(archive))
      },
    }).catch((e) => e)
    expect(tail).toMatch(/\nK hmac-sha256 [0-9a-f]{64}\n$/)
    expect(err).toBeInstanceOf(LifecycleError)
    expect(err.message).toMatch(/not signed, and an archive key is set/)
    expect(await sums(src, '3')).toEqual(fx.original)
    expect(await q(src, 'select count(*)::int as n from tenant_placements')).toEqual([{ n: 0 }])
    await rm(archive, { force: true })
  })

  it('a move begun with an archive key resumes only with it; with it, to the end', async () => {
    const archiveKey = 'move-archive-key-0123456789'
    const src = await fx.copyOf(fx.source, 'signed-resume')
    const dst = await fx.copyOf(fx.target, 'signed-resume')
    const stop = new Error('stopped after the export')
    const first = await move(src, dst, '3', {
      archiveKey,
      onStep: (s) => {
        if (s === 'exported') throw stop
      },
    }).catch((e) => e)
    expect(first).toBe(stop)
    const keyless = await move(src, dst, '3').catch((e) => e)
    expect(keyless).toBeInstanceOf(LifecycleError)
    expect(keyless.message).toMatch(/wrote a signed archive: resume it with the same archive key/)
    expect(await sums(src, '3')).toEqual(fx.original)
    const done = await move(src, dst, '3', { archiveKey })
    expect(done.resumed).toBe(true)
    await expectMoved(src, dst)
  })

  it('CLI: rowtenancy tenants move --to URL --to-name NAME', async () => {
    const src = await fx.copyOf(fx.source, 'cli')
    const dst = await fx.copyOf(fx.target, 'cli')
    const r = await cli([
      'tenants',
      'move',
      '--tenant-id',
      '3',
      '--to',
      dst,
      '--to-name',
      'eu-2',
      '--work-dir',
      fx.dir,
      '--database-url',
      src,
      '--json',
    ])
    expect(r.code, r.stderr).toBe(0)
    expect(JSON.parse(r.stdout.trim().split('\n').at(-1)!).to).toBe('eu-2')
    await expectMoved(src, dst)
    const bad = await cli([
      'tenants',
      'move',
      '--tenant-id',
      '1',
      '--to',
      'postgres://postgres@127.0.0.1:1/none',
      '--database-url',
      src,
    ])
    expect(bad.code).toBe(1)
    expect(bad.stderr).toMatch(/DATABASE_UNREACHABLE/)
  })

  it('a destination that is the source database under another URL: refused before anything changes', async () => {
    const src = await fx.copyOf(fx.source, 'self')
    // the same database, spelled another way: the copy would "verify" against the source itself
    const alias = src.replace('127.0.0.1', 'localhost')
    expect(alias).not.toBe(src)
    await expect(move(src, alias, '3')).rejects.toThrow(/same database/)
    expect(await sums(src, '3')).toEqual(fx.original)
    expect(await q(src, 'select status from tenants where id = 3')).toEqual([{ status: 'active' }])
    // refused before the move ledger or the placement map is made
    expect(await q(src, "select to_regclass('rowtenancy_tenant_move') is null as none")).toEqual([
      { none: true },
    ])
    const r = await cli([
      'tenants',
      'move',
      '--tenant-id',
      '3',
      '--to',
      alias,
      '--to-name',
      'eu-2',
      '--work-dir',
      fx.dir,
      '--database-url',
      src,
    ])
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/same database/)
    expect(await sums(src, '3')).toEqual(fx.original)
  })

  it('a catalog that is the source database under another URL is the catalog: the tenant row stays', async () => {
    const src = await fx.copyOf(fx.source, 'selfcat')
    const dst = await fx.copyOf(fx.target, 'selfcat')
    const catalog = new pg.Pool({ connectionString: src.replace('127.0.0.1', 'localhost'), max: 3 })
    try {
      await move(src, dst, '3', { catalog })
    } finally {
      await catalog.end()
    }
    await expectMoved(src, dst)
  })

  it('an unreachable destination or an incompatible one: a clear error, nothing changed', async () => {
    const src = await fx.copyOf(fx.source, 'bad')
    const dst = await fx.copyOf(fx.target, 'bad')
    const db = new pg.Pool({ connectionString: src, max: 2 })
    const nowhere = new pg.Pool({
      connectionString: 'postgres://postgres@127.0.0.1:1/none',
      max: 1,
      connectionTimeoutMillis: 2000,
    })
    nowhere.on('error', () => {})
    try {
      await expect(
        moveTenant({ db, to: nowhere, toName: 'eu-2', tenantId: '3', workDir: fx.dir }),
      ).rejects.toThrow(/reach|connect/i)
    } finally {
      await db.end()
      await nowhere.end().catch(() => {})
    }
    await q(dst, 'alter table book drop column title')
    await expect(move(src, dst, '3')).rejects.toThrow(/book\.title/)
    expect(await q(src, 'select status from tenants where id = 3')).toEqual([{ status: 'active' }])
    expect(await q(src, 'select count(*)::int as n from rowtenancy_tenant_move')).toEqual([
      { n: 0 },
    ])
    expect(await q(dst, 'select count(*)::int as n from tenants where id = 3')).toEqual([{ n: 0 }])
    expect(await sums(src, '3')).toEqual(fx.original)
  })
})
