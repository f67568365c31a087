import { existsSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import pg from 'pg'
import { describe, expect, it } from 'vitest'
import { DatabaseUnavailableError, InvalidInputError } from '../src/entries/index.js'
import {
  eraseTenant,
  importTenant,
  moveTenant,
  readArchiveManifest,
} from '../src/lifecycle/index.js'
import { cli } from './helpers/cli.js'
import { queryAt, rowsAt, splitRows, tenantSums, useMoveFixture } from './helpers/move-fixture.js'

/**
 * Pitfall: `tenants export|import|erase|move` waited forever behind another
 * session's lock (an open transaction, a migration, a pg_dump): no lock wait
 * limit was set in their transactions. With `--lock-timeout` they fail with
 * DATABASE_UNAVAILABLE naming the holder, leave what a crash at that point
 * leaves, and a rerun after the lock is gone ends in the rows of a clean run.
 */

const fx = useMoveFixture('oplock')
const sums = tenantSums
const q = queryAt

/** Another session holding `sql`'s lock (in an open transaction) on `url` until `release`. */
async function hold(
  url: string,
  sql: string,
  name = 'the_holder',
): Promise<{ release(): Promise<void> }> {
  const c = new pg.Client({ connectionString: url, application_name: name })
  await c.connect()
  await c.query('begin')
  await c.query(sql)
  return {
    async release() {
      await c.query('rollback').catch(() => {})
      await c.end()
    },
  }
}

/** The CLI failed on the lock wait: DATABASE_UNAVAILABLE, the holder named, what a rerun does. */
function expectLockFailure(r: { code: number; stdout: string; stderr: string }, rerun: RegExp) {
  expect(r.code, r.stderr + r.stdout).toBe(1)
  expect(r.stderr).toContain('error [DATABASE_UNAVAILABLE]')
  expect(r.stderr).toMatch(/Gave up waiting for a lock after 300 ms on .*"tag"/)
  expect(r.stderr).toMatch(/held by pid \d+ \(postgres the_holder, idle in transaction/)
  expect(r.stderr).toMatch(rerun)
  expect(r.stderr).toMatch(/wait longer with --lock-timeout <ms>/)
}

describe('tenants export|import|erase|move --lock-timeout', () => {
  it.each([
    [['export', '--tenant-id', '3', '--out', 'x.rtar'], '0'],
    [['import', '--in', 'x.rtar'], '10s'],
    [['erase', '--tenant-id', '3', '--yes'], '600001'],
    [['move', '--tenant-id', '3', '--to', 'postgres://postgres@127.0.0.1:1/none'], '1.5'],
  ])(
    'tenants %j --lock-timeout %s: INVALID_INPUT naming the flag, nothing changed',
    async (args, value) => {
      const src = await fx.copyOf(fx.source, `bad_${args[0]}`)
      const r = await cli([
        'tenants',
        ...args.map((a) => (a === 'x.rtar' ? join(fx.dir, 'x.rtar') : a)),
        '--lock-timeout',
        value,
        '--database-url',
        src,
      ])
      expect(r.code).toBe(1)
      expect(r.stderr).toContain('error [INVALID_INPUT]')
      expect(r.stderr).toMatch(
        new RegExp(
          `--lock-timeout must be milliseconds from 1 to 600000 .*not "${value.replace('.', '\\.')}"`,
        ),
      )
      expect(await rowsAt(src)).toEqual({ ...fx.tenant3, ...fx.others })
      expect(await q(src, "select to_regclass('rowtenancy_tenant_move') as t")).toEqual([
        { t: null },
      ])
      expect(existsSync(join(fx.dir, 'x.rtar'))).toBe(false)
    },
  )

  it('the library refuses a bad lockTimeoutMs before anything runs', async () => {
    const p = new pg.Pool({ connectionString: fx.source.url, max: 1 })
    try {
      const err = await eraseTenant({ db: p, tenantId: '3', lockTimeoutMs: -1 }).catch((e) => e)
      expect(err).toBeInstanceOf(InvalidInputError)
      expect(err.message).toMatch(/`lockTimeoutMs` must be milliseconds from 1 to 600000/)
    } finally {
      await p.end()
    }
    expect(await sums(fx.source.url, '3')).toEqual(fx.original)
  })

  it('export behind an access exclusive lock: fails naming the holder, no archive; the rerun writes the clean one', async () => {
    const src = await fx.copyOf(fx.source, 'export')
    const out = join(fx.dir, 'export-3.rtar')
    const args = ['tenants', 'export', '--tenant-id', '3', '--out', out, '--database-url', src]
    const holder = await hold(src, 'lock table tag in access exclusive mode')
    let r: Awaited<ReturnType<typeof cli>>
    try {
      const started = Date.now()
      r = await cli([...args, '--lock-timeout', '300'])
      expect(Date.now() - started).toBeLessThan(8_000)
    } finally {
      await holder.release()
    }
    expectLockFailure(r, /Nothing was exported .*rerunning the command does the whole export/)
    expect(existsSync(out)).toBe(false)
    expect(existsSync(`${out}.partial`)).toBe(false)
    expect(await rowsAt(src)).toEqual({ ...fx.tenant3, ...fx.others })
    const again = await cli(args)
    expect(again.code, again.stderr).toBe(0)
    expect((await readArchiveManifest(out)).tables).toEqual(
      (await readArchiveManifest(fx.archive)).tables,
    )
  })

  it('import behind an access exclusive lock: fails naming the holder, nothing imported; the rerun loads the clean rows', async () => {
    const dst = await fx.copyOf(fx.target, 'import')
    const args = ['tenants', 'import', '--in', fx.archive, '--database-url', dst]
    const before = await rowsAt(dst)
    const holder = await hold(dst, 'lock table tag in access exclusive mode')
    let r: Awaited<ReturnType<typeof cli>>
    try {
      r = await cli([...args, '--lock-timeout', '300'])
    } finally {
      await holder.release()
    }
    expectLockFailure(r, /Nothing was imported .*rerunning the command does the whole import/)
    expect(await rowsAt(dst)).toEqual(before)
    expect(await q(dst, 'select count(*)::int as n from tenants')).toEqual([{ n: 0 }])
    const again = await cli(args)
    expect(again.code, again.stderr).toBe(0)
    expect(await rowsAt(dst)).toEqual({ ...before, ...fx.tenant3 })
    expect(await sums(dst, '3')).toEqual(fx.original)
  })

  it('erase behind a share lock (in the middle of its deletes): fails naming the holder, nothing erased; the rerun erases', async () => {
    const src = await fx.copyOf(fx.source, 'erase')
    const args = ['tenants', 'erase', '--tenant-id', '3', '--yes', '--database-url', src]
    const holder = await hold(src, 'lock table tag in share mode')
    let r: Awaited<ReturnType<typeof cli>>
    try {
      r = await cli([...args, '--lock-timeout', '300', '--json'])
    } finally {
      await holder.release()
    }
    expectLockFailure(r, /Nothing was erased .*rerunning the command does the whole erasure/)
    // it stopped in the middle of its deletes (reverse foreign-key order: book_tag, book, author, tag)
    expect(r.stdout).toMatch(/"op":"erase","table":"author"/)
    expect(r.stdout).not.toMatch(/"op":"erase","table":"tag"/)
    expect(await rowsAt(src)).toEqual({ ...fx.tenant3, ...fx.others })
    expect(await q(src, 'select status from tenants where id = 3')).toEqual([{ status: 'active' }])
    const again = await cli(args)
    expect(again.code, again.stderr).toBe(0)
    expect(await rowsAt(src)).toEqual(fx.others)
    expect(await q(src, 'select count(*)::int as n from tenants where id = 3')).toEqual([{ n: 0 }])
  })
})

describe('tenants move --lock-timeout', () => {
  /** The tenant is in exactly one place, as after a clean move. */
  async function expectMoved(src: string, dst: string) {
    expect(await sums(dst, '3')).toEqual(fx.original)
    expect(splitRows(await rowsAt(dst), (k) => k.endsWith('@3'))).toEqual(fx.tenant3)
    expect(await rowsAt(src)).toEqual(fx.others)
    expect(await q(src, 'select database from tenant_placements where tenant_id = 3')).toEqual([
      { database: 'eu-2' },
    ])
    expect(await q(src, 'select status from tenants where id = 3')).toEqual([{ status: 'active' }])
    expect(await q(dst, 'select status from tenants where id = 3')).toEqual([{ status: 'active' }])
    expect(await q(src, "select state from rowtenancy_tenant_move where tenant_id = '3'")).toEqual([
      { state: 'done' },
    ])
  }

  /** What a crash after `state` leaves: the ledger at it, suspended, the source untouched. */
  async function expectStoppedAfter(src: string, state: string) {
    expect(await q(src, "select state from rowtenancy_tenant_move where tenant_id = '3'")).toEqual([
      { state },
    ])
    expect(await q(src, 'select status from tenants where id = 3')).toEqual([
      { status: 'suspended' },
    ])
    expect(await sums(src, '3')).toEqual(fx.original)
    expect(splitRows(await rowsAt(src), (k) => !k.endsWith('@3'))).toEqual(fx.others)
    expect(await q(src, 'select count(*)::int as n from tenant_placements')).toEqual([{ n: 0 }])
  }

  it('CLI: the import at the destination behind a lock stops the move after "exported", as a crash; the rerun finishes it', async () => {
    const src = await fx.copyOf(fx.source, 'move_cli')
    const dst = await fx.copyOf(fx.target, 'move_cli')
    const args = [
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
    ]
    const holder = await hold(dst, 'lock table tag in access exclusive mode')
    let r: Awaited<ReturnType<typeof cli>>
    try {
      r = await cli([...args, '--lock-timeout', '300'])
    } finally {
      await holder.release()
    }
    expectLockFailure(
      r,
      /stopped after its step "exported", as a crash there would: .*Rerunning the same command continues the move/,
    )
    expect(r.stderr).toMatch(/The wait was in the database "[^"]*oplock_dst[^"]*_move_cli"/)
    await expectStoppedAfter(src, 'exported')
    expect(existsSync(join(fx.dir, 'rowtenancy-move-3.rtar'))).toBe(true)
    expect(await q(dst, 'select count(*)::int as n from tenants')).toEqual([{ n: 0 }])
    const again = await cli(args)
    expect(again.code, again.stderr).toBe(0)
    expect(again.stdout).toMatch(/\(resumed\)/)
    await expectMoved(src, dst)
  })

  async function libraryMove(
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

  it('a lock on the ledger after the import committed: stopped after "exported"; the rerun finds the copy and goes on', async () => {
    const src = await fx.copyOf(fx.source, 'move_ledger')
    const dst = await fx.copyOf(fx.target, 'move_ledger')
    let holder: { release(): Promise<void> } | undefined
    const err = await libraryMove(src, dst, {
      lockTimeoutMs: 300,
      onStep: async (s) => {
        if (s === 'exported')
          holder = await hold(src, 'lock table rowtenancy_tenant_move in access exclusive mode')
      },
    })
      .catch((e) => e)
      .finally(() => holder?.release())
    expect(err).toBeInstanceOf(DatabaseUnavailableError)
    expect(err.message).toMatch(/on "public"\."rowtenancy_tenant_move", held by pid \d+/)
    expect(err.message).toMatch(/stopped after its step "exported"/)
    await expectStoppedAfter(src, 'exported')
    // the import had committed: the destination holds the whole copy (still suspended there)
    expect(await sums(dst, '3')).toEqual(fx.original)
    const r = await libraryMove(src, dst, { lockTimeoutMs: 300 })
    expect(r.resumed).toBe(true)
    await expectMoved(src, dst)
  })

  it('a lock at the source during the cut-over erase: stopped after "verified", nothing erased; the rerun finishes', async () => {
    const src = await fx.copyOf(fx.source, 'move_erase')
    const dst = await fx.copyOf(fx.target, 'move_erase')
    let holder: { release(): Promise<void> } | undefined
    const err = await libraryMove(src, dst, {
      lockTimeoutMs: 300,
      onStep: async (s) => {
        if (s === 'verified') holder = await hold(src, 'lock table tag in share mode')
      },
    })
      .catch((e) => e)
      .finally(() => holder?.release())
    expect(err).toBeInstanceOf(DatabaseUnavailableError)
    expect(err.message).toMatch(/on "public"\."tag", held by pid \d+ \(postgres the_holder/)
    expect(err.message).toMatch(/stopped after its step "verified"/)
    await expectStoppedAfter(src, 'verified')
    const r = await libraryMove(src, dst, { lockTimeoutMs: 300 })
    expect(r.resumed).toBe(true)
    await expectMoved(src, dst)
  })

  it('a failed verification whose undo then waits too long: marked stale, suspended, source untouched; the rerun moves anew', async () => {
    const src = await fx.copyOf(fx.source, 'move_undo')
    const dst = await fx.copyOf(fx.target, 'move_undo')
    let holder: { release(): Promise<void> } | undefined
    const err = await libraryMove(src, dst, {
      lockTimeoutMs: 300,
      onStep: async (s) => {
        if (s !== 'imported') return
        // the copy no longer matches the archive, and the undo's delete of its domains must wait
        await q(dst, "update tag set label = 'tampered' where tenant_id = 3 and id = 1")
        holder = await hold(dst, 'lock table tenant_domains in share mode')
      },
    })
      .catch((e) => e)
      .finally(() => holder?.release())
    expect(err.message).toMatch(/does not match the archive/)
    expect(err.message).toMatch(/Removing its copy at the destination failed too \(.*lock timeout/)
    expect(err.message).toMatch(/marked stale .*Rerun the same command/)
    await expectStoppedAfter(src, 'stale')
    const r = await libraryMove(src, dst, { lockTimeoutMs: 300 })
    expect(r.resumed).toBe(true)
    await expectMoved(src, dst)
  })

  it('a failed verification whose undo cannot write the ledger: says it is left at "imported"; the first rerun moves', async () => {
    const src = await fx.copyOf(fx.source, 'move_unrec')
    const dst = await fx.copyOf(fx.target, 'move_unrec')
    let holder: { release(): Promise<void> } | undefined
    const err = await libraryMove(src, dst, {
      lockTimeoutMs: 300,
      onStep: async (s) => {
        if (s !== 'imported') return
        // the copy no longer matches the archive, and the undo cannot write the ledger
        await q(dst, "update tag set label = 'tampered' where tenant_id = 3 and id = 1")
        holder = await hold(src, 'lock table rowtenancy_tenant_move in access exclusive mode')
      },
    })
      .catch((e) => e)
      .finally(() => holder?.release())
    // not swallowed: the first run says what it left and what a rerun does
    expect(err.message).toMatch(/does not match the archive/)
    expect(err.message).toMatch(/Undoing it could not be recorded in the ledger \(.*lock timeout/)
    expect(err.message).toMatch(
      /left at its step "imported", its copy at the destination and the archive are removed; the tenant stays suspended and the source is untouched\. Rerun the same command/,
    )
    await expectStoppedAfter(src, 'imported')
    expect(existsSync(join(fx.dir, 'rowtenancy-move-3.rtar'))).toBe(false)
    expect(await q(dst, 'select count(*)::int as n from tenants where id = 3')).toEqual([{ n: 0 }])
    // the first rerun: the archive of "imported" is gone, so the move is copied anew, to the end
    const r = await libraryMove(src, dst, { lockTimeoutMs: 300 })
    expect(r.resumed).toBe(true)
    await expectMoved(src, dst)
  })

  it('a resumed move whose archive is gone before the cut-over copies anew (no "give the path" error)', async () => {
    const src = await fx.copyOf(fx.source, 'move_gone')
    const dst = await fx.copyOf(fx.target, 'move_gone')
    const err = await libraryMove(src, dst, {
      onStep: (s) => {
        if (s === 'imported') throw new Error('crash here')
      },
    }).catch((e) => e)
    expect(err.message).toBe('crash here')
    await expectStoppedAfter(src, 'imported')
    await rm(join(fx.dir, 'rowtenancy-move-3.rtar'))
    const r = await libraryMove(src, dst)
    expect(r.resumed).toBe(true)
    await expectMoved(src, dst)
  })

  it('a destination that holds another tenant of that id: move refused, its rows kept (not undone as a copy)', async () => {
    const src = await fx.copyOf(fx.source, 'move_taken')
    const dst = await fx.copyOf(fx.target, 'move_taken')
    const to = new pg.Pool({ connectionString: dst, max: 1 })
    try {
      await importTenant({ db: to, in: fx.archive })
    } finally {
      await to.end()
    }
    await q(dst, "update tag set label = 'theirs' where tenant_id = 3 and id = 1")
    const before = await sums(dst, '3')
    const err = await libraryMove(src, dst).catch((e) => e)
    expect(err.message).toMatch(/already holds a tenant 3 with other data: move refused/)
    expect(await sums(dst, '3')).toEqual(before)
    expect(await q(src, 'select count(*)::int as n from rowtenancy_tenant_move')).toEqual([
      { n: 0 },
    ])
    expect(await q(src, 'select status from tenants where id = 3')).toEqual([{ status: 'active' }])
    expect(await rowsAt(src)).toEqual({ ...fx.tenant3, ...fx.others })
    expect(existsSync(join(fx.dir, 'rowtenancy-move-3.rtar'))).toBe(false)
  })

  it('move: the wait is at the destination while a reader idles at the source: names the destination and its holder', async () => {
    const src = await fx.copyOf(fx.source, 'move_where')
    const dst = await fx.copyOf(fx.target, 'move_where')
    const args = ['tenants', 'move', '--tenant-id', '3', '--to', dst, '--to-name', 'eu-2']
    const holder = await hold(dst, 'lock table tag in access exclusive mode')
    // an ordinary app session at the source, idle in a transaction after a read (access share)
    const reader = await hold(src, 'select count(*) from tag where tenant_id = 1', 'the_reader')
    let r: Awaited<ReturnType<typeof cli>>
    try {
      r = await cli([...args, '--work-dir', fx.dir, '--database-url', src, '--lock-timeout', '300'])
    } finally {
      await holder.release()
      await reader.release()
    }
    expectLockFailure(r, /stopped after its step "exported"/)
    expect(r.stderr).toMatch(/The wait was in the database "[^"]*oplock_dst[^"]*_move_where"/)
    expect(r.stderr).not.toContain('the_reader')
    const again = await cli([...args, '--work-dir', fx.dir, '--database-url', src])
    expect(again.code, again.stderr).toBe(0)
    await expectMoved(src, dst)
  })

  it('CLI: behind a lock on tenants before the ledger entry: changed nothing; the rerun moves', async () => {
    const src = await fx.copyOf(fx.source, 'move_start')
    const dst = await fx.copyOf(fx.target, 'move_start')
    const args = ['tenants', 'move', '--tenant-id', '3', '--to', dst, '--to-name', 'eu-2']
    const holder = await hold(src, 'lock table tenants in access exclusive mode')
    let r: Awaited<ReturnType<typeof cli>>
    try {
      r = await cli([...args, '--work-dir', fx.dir, '--database-url', src, '--lock-timeout', '300'])
    } finally {
      await holder.release()
    }
    expect(r.code, r.stderr).toBe(1)
    expect(r.stderr).toContain('error [DATABASE_UNAVAILABLE]')
    expect(r.stderr).toMatch(/on "public"\."tenants", held by pid \d+ \(postgres the_holder/)
    expect(r.stderr).toMatch(/changed nothing .*Rerunning the same command starts the move/)
    expect(await q(src, "select to_regclass('rowtenancy_tenant_move') as t")).toEqual([{ t: null }])
    expect(await q(src, 'select status from tenants where id = 3')).toEqual([{ status: 'active' }])
    expect(await rowsAt(src)).toEqual({ ...fx.tenant3, ...fx.others })
    const again = await cli([...args, '--work-dir', fx.dir, '--database-url', src])
    expect(again.code, again.stderr).toBe(0)
    await expectMoved(src, dst)
  })
})
