import { existsSync } from 'node:fs'
import { mkdir, rm, truncate } from 'node:fs/promises'
import { join } from 'node:path'
import pg from 'pg'
import { describe, expect, it } from 'vitest'
import { LifecycleError } from '../src/entries/index.js'
import { importTenant, moveTenant } from '../src/lifecycle/index.js'
import { queryAt, rowsAt, splitRows, tenantSums, useMoveFixture } from './helpers/move-fixture.js'

/**
 * Pitfall: a move that went the "stale" way (its archive gone on a rerun, a
 * step that failed, a source changed after the export) removed every row of
 * the tenant id at the destination as "its copy", without checking it wrote
 * them: a destination already holding another tenant of that id (which a
 * fresh move refuses) lost that tenant's rows. The move removes only what it
 * wrote; anything else is kept and the move is refused as a fresh one is.
 */

const fx = useMoveFixture('movefr')
const sums = tenantSums
const q = queryAt

async function move(
  src: string,
  dst: string,
  extra: Partial<Parameters<typeof moveTenant>[0]> = {},
) {
  const db = new pg.Pool({ connectionString: src, max: 3 })
  const to = new pg.Pool({ connectionString: dst, max: 3 })
  try {
    return await moveTenant({ db, to, toName: 'eu-2', tenantId: '3', workDir: fx.dir, ...extra })
  } finally {
    await db.end()
    await to.end()
  }
}

/** Puts another tenant 3 at `dst` (the clean export with one row changed): rows no move wrote. */
async function foreignTenant3(dst: string): Promise<Awaited<ReturnType<typeof sums>>> {
  const to = new pg.Pool({ connectionString: dst, max: 1 })
  try {
    await importTenant({ db: to, in: fx.archive })
  } finally {
    await to.end()
  }
  await q(dst, "update tag set label = 'theirs' where tenant_id = 3 and id = 1")
  return sums(dst, '3')
}

/** The move was refused and undone: the destination's tenant 3 kept, the source as before. */
async function expectRefusedKeeping(src: string, dst: string, theirs: unknown) {
  expect(await sums(dst, '3')).toEqual(theirs)
  expect(await q(dst, 'select label from tag where tenant_id = 3 and id = 1')).toEqual([
    { label: 'theirs' },
  ])
  expect(await rowsAt(src)).toEqual({ ...fx.tenant3, ...fx.others })
  expect(await q(src, 'select count(*)::int as n from tenant_placements')).toEqual([{ n: 0 }])
}

describe('tenants move: the stale way removes only what the move wrote', () => {
  it('stopped at "exported", archive deleted by hand, another tenant 3 at the destination: kept, move refused', async () => {
    const src = await fx.copyOf(fx.source, 'gone')
    const dst = await fx.copyOf(fx.target, 'gone')
    const stop = new Error('stopped after the export')
    const first = await move(src, dst, {
      onStep: (s) => {
        if (s === 'exported') throw stop
      },
    }).catch((e) => e)
    expect(first).toBe(stop)
    // someone else's tenant 3 arrives at the destination, and the archive is deleted
    const theirs = await foreignTenant3(dst)
    await rm(join(fx.dir, 'rowtenancy-move-3.rtar'))
    const err = await move(src, dst).catch((e) => e)
    expect(err).toBeInstanceOf(LifecycleError)
    expect(err.message).toMatch(/already holds a tenant 3 with other data: move refused/)
    await expectRefusedKeeping(src, dst, theirs)
    expect(await q(src, 'select status from tenants where id = 3')).toEqual([{ status: 'active' }])
    expect(await q(src, 'select count(*)::int as n from rowtenancy_tenant_move')).toEqual([
      { n: 0 },
    ])
  })

  it('an archive unreadable at the import, another tenant 3 at the destination: kept, the source untouched', async () => {
    const src = await fx.copyOf(fx.source, 'broken')
    const dst = await fx.copyOf(fx.target, 'broken')
    const theirs = await foreignTenant3(dst)
    const err = await move(src, dst, {
      onStep: async (s) => {
        if (s === 'exported') await truncate(join(fx.dir, 'rowtenancy-move-3.rtar'), 100)
      },
    }).catch((e) => e)
    expect(err).toBeInstanceOf(LifecycleError)
    await expectRefusedKeeping(src, dst, theirs)
    // the failed move was undone: the tenant has its status back, the ledger no entry
    expect(await q(src, 'select status from tenants where id = 3')).toEqual([{ status: 'active' }])
    expect(await q(src, 'select count(*)::int as n from rowtenancy_tenant_move')).toEqual([
      { n: 0 },
    ])
  })

  it('an export that fails, another tenant 3 at the destination: kept, the source untouched', async () => {
    const src = await fx.copyOf(fx.source, 'noexport')
    const dst = await fx.copyOf(fx.target, 'noexport')
    const theirs = await foreignTenant3(dst)
    const workDir = join(fx.dir, 'vanishing')
    await mkdir(workDir)
    const err = await move(src, dst, {
      workDir,
      onStep: async (s) => {
        if (s === 'suspended') await rm(workDir, { recursive: true })
      },
    }).catch((e) => e)
    expect(err).toBeInstanceOf(Error)
    await expectRefusedKeeping(src, dst, theirs)
    expect(await q(src, 'select status from tenants where id = 3')).toEqual([{ status: 'active' }])
  })

  it('stopped at "exported" after the import committed, archive deleted: the copy is recognised, removed, and the move finishes', async () => {
    const src = await fx.copyOf(fx.source, 'own')
    const dst = await fx.copyOf(fx.target, 'own')
    const stop = new Error('stopped after the export')
    const first = await move(src, dst, {
      onStep: (s) => {
        if (s === 'exported') throw stop
      },
    }).catch((e) => e)
    expect(first).toBe(stop)
    // the import committed at the destination, the ledger did not move on (a crash there)
    const to = new pg.Pool({ connectionString: dst, max: 1 })
    try {
      await importTenant({ db: to, in: join(fx.dir, 'rowtenancy-move-3.rtar') })
    } finally {
      await to.end()
    }
    await rm(join(fx.dir, 'rowtenancy-move-3.rtar'))
    const r = await move(src, dst)
    expect(r.resumed).toBe(true)
    expect(await sums(dst, '3')).toEqual(fx.original)
    expect(splitRows(await rowsAt(dst), (k) => k.endsWith('@3'))).toEqual(fx.tenant3)
    expect(await rowsAt(src)).toEqual(fx.others)
    expect(await q(src, "select state from rowtenancy_tenant_move where tenant_id = '3'")).toEqual([
      { state: 'done' },
    ])
    expect(existsSync(join(fx.dir, 'rowtenancy-move-3.rtar'))).toBe(false)
  })

  it('a "stale" entry left by an undo that could not finish, another tenant 3 at the destination: kept, move refused', async () => {
    const src = await fx.copyOf(fx.source, 'leftstale')
    const dst = await fx.copyOf(fx.target, 'leftstale')
    const stop = new Error('stopped after the export')
    const first = await move(src, dst, {
      onStep: (s) => {
        if (s === 'exported') throw stop
      },
    }).catch((e) => e)
    expect(first).toBe(stop)
    const theirs = await foreignTenant3(dst)
    // what a failed import whose undo then failed leaves: the entry marked stale
    await q(src, "update rowtenancy_tenant_move set state = 'stale' where tenant_id = '3'")
    const err = await move(src, dst).catch((e) => e)
    expect(err).toBeInstanceOf(LifecycleError)
    expect(err.message).toMatch(/already holds a tenant 3 with other data: move refused/)
    await expectRefusedKeeping(src, dst, theirs)
    expect(await q(src, 'select status from tenants where id = 3')).toEqual([{ status: 'active' }])
  })

  it('"switched" (catalog apart from the source) and the archive gone: stops, says how to finish by hand, changes nothing', async () => {
    const src = await fx.copyOf(fx.source, 'switched')
    const cat = await fx.copyOf(fx.source, 'switched_cat')
    const dst = await fx.copyOf(fx.target, 'switched')
    const catalog = new pg.Pool({ connectionString: cat, max: 3 })
    try {
      const stop = new Error('stopped after the switch')
      const first = await move(src, dst, {
        catalog,
        onStep: (s) => {
          if (s === 'switched') throw stop
        },
      }).catch((e) => e)
      expect(first).toBe(stop)
      await rm(join(fx.dir, 'rowtenancy-move-3.rtar'))
      const err = await move(src, dst, { catalog }).catch((e) => e)
      expect(err).toBeInstanceOf(LifecycleError)
      expect(err.message).toMatch(
        /is switched \(the tenant lives there now\), but its archive .* is gone/,
      )
      expect(err.message).toMatch(/Nothing was changed/)
      expect(err.message).toMatch(/rowtenancy tenants erase --tenant-id 3 against the source/)
      expect(err.message).toContain("delete from rowtenancy_tenant_move where tenant_id = '3'")
    } finally {
      await catalog.end()
    }
    // the source keeps every row, the destination holds the verified copy, the catalog is switched
    expect(await rowsAt(src)).toEqual({ ...fx.tenant3, ...fx.others })
    expect(await sums(dst, '3')).toEqual(fx.original)
    expect(await q(cat, "select state from rowtenancy_tenant_move where tenant_id = '3'")).toEqual([
      { state: 'switched' },
    ])
    expect(await q(cat, 'select database from tenant_placements where tenant_id = 3')).toEqual([
      { database: 'eu-2' },
    ])
    expect(await q(cat, 'select status from tenants where id = 3')).toEqual([{ status: 'active' }])
  })

  it('a move stopped at "imported" in a ledger made before the export and import were recorded: resumed to the end', async () => {
    const src = await fx.copyOf(fx.source, 'oldledger')
    const dst = await fx.copyOf(fx.target, 'oldledger')
    const stop = new Error('stopped after the import')
    const first = await move(src, dst, {
      onStep: (s) => {
        if (s === 'imported') throw stop
      },
    }).catch((e) => e)
    expect(first).toBe(stop)
    await q(
      src,
      'alter table rowtenancy_tenant_move drop column exported_manifest, drop column copied',
    )
    // its archive is gone too: the state alone shows the copy at the destination is the move's
    await rm(join(fx.dir, 'rowtenancy-move-3.rtar'))
    const r = await move(src, dst)
    expect(r.resumed).toBe(true)
    expect(await sums(dst, '3')).toEqual(fx.original)
    expect(await rowsAt(src)).toEqual(fx.others)
    expect(
      await q(src, "select state, copied from rowtenancy_tenant_move where tenant_id = '3'"),
    ).toEqual([{ state: 'done', copied: true }])
  })
})
