import { PassThrough } from 'node:stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createCliContext } from '../src/cli/context.js'
import { createOutput } from '../src/cli/output.js'
import { runCli } from '../src/cli/program.js'
import { readLedger } from '../src/entries/migrate.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'
import { buildLegacyFixture, HOSTILE_SCHEMA } from './helpers/legacy-fixture.js'

let db: TestDatabase

beforeAll(async () => {
  db = await createTestDatabase('migrate_cmds')
  await buildLegacyFixture(db.pool, { rows: 10 })
})
afterAll(async () => {
  db?.pool.on('error', () => {}) // a connection ended by DROP DATABASE ... WITH (FORCE)
  await db?.drop()
})

/** Runs the CLI in-process and captures stdout / stderr. */
async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out = new PassThrough()
  const err = new PassThrough()
  let o = ''
  let e = ''
  out.on('data', (c) => (o += c))
  err.on('data', (c) => (e += c))
  const code = await runCli(
    ['node', 'rowtenancy', ...args, '--database-url', db.url],
    createCliContext(createOutput(out, err)),
  )
  return { code, out: o, err: e }
}

const count = async (sql: string, values: unknown[] = []) =>
  Number((await db.pool.query(sql, values)).rows[0].n)

describe('CLI: migrate-to-row-tenancy, verify, rollback, drop-schemas', () => {
  it('migrate --dry-run --json prints events and a report, writes nothing, exits 1 for blocking drift', async () => {
    const r = await cli('migrate-to-row-tenancy', '--all', '--dry-run', '--json')
    expect(r.code).toBe(1)
    const lines = r.out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
    expect(lines[0].type).toBe('plan')
    const report = lines.at(-1)
    expect(report.type).toBe('report')
    expect(report.tenants.find((t: any) => t.tenantId === '4').status).toBe('blocked')
    expect(r.err).toMatch(/error \[MIGRATION_ERROR\]: dry run: 1 tenant/)
    expect(
      (await db.pool.query("select to_regclass('public.rowtenancy_migration') as r")).rows[0].r,
    ).toBeNull()
  })

  it('migrate --tenant-id (alias migrate) exits 0 with a plain report; an unknown id exits 1', async () => {
    const ok = await cli('migrate', '--tenant-id', '1', '--tenant-id', '3', '--jobs', '2')
    expect(ok.err).not.toMatch(/error/)
    expect(ok.code).toBe(0)
    expect(ok.out).toMatch(/tenant 1 \("acme"\): migrated/)
    expect(ok.out).toContain(`tenant 3 (${JSON.stringify(HOSTILE_SCHEMA)}): migrated`)
    const bad = await cli('migrate', '--tenant-id', '77')
    expect(bad.code).toBe(1)
    expect(bad.err).toMatch(/Unknown tenant id "77"/)
    const none = await cli('migrate')
    expect(none.code).toBe(1)
    expect(none.err).toMatch(/--all, or --tenant-id/)
  })

  it('an unreachable database is a clear error', async () => {
    const r = await runCli(
      [
        'node',
        'rowtenancy',
        'migrate',
        '--all',
        '--database-url',
        'postgres://nobody@127.0.0.1:1/nowhere',
      ],
      createCliContext(createOutput(new PassThrough(), collect())),
    )
    expect(r).toBe(1)
    expect(collected).toMatch(/DATABASE_UNREACHABLE/)
  })

  it('verify passes for migrated tenants and finds a tampered row', async () => {
    // Tenants 2 (never run) and 4 (blocking drift) are not migrated: named, and exit 1.
    const all = await cli('verify')
    expect(all.code).toBe(1)
    expect(all.out).toMatch(/tenant 1 \("acme"\): ok, 8 tables/)
    expect(all.out).toMatch(/tenant 2 \("globex"\): NOT MIGRATED \(not started\): never migrated/)
    expect(all.out).toMatch(
      /tenant 4 \("drifty"\): NOT MIGRATED \(not started\): blocked by drift: book\.isbn/,
    )
    expect(all.out).toMatch(/2 tenants verified: 0 mismatched; 2 not migrated/)
    expect(all.err).toMatch(/2 legacy tenant\(s\) are not migrated .* --tenant-id/)
    const ok = await cli('verify', '--tenant-id', '1', '--tenant-id', '3')
    expect(ok.code).toBe(0)
    expect(ok.out).toMatch(/2 tenants verified: 0 mismatched; 0 not migrated/)
    await db.pool.query(
      `update public.book set title = title || '!' where tenant_id = 1 and id = 3`,
    )
    const bad = await cli('verify', '--tenant-id', '1', '--json')
    expect(bad.code).toBe(1)
    const report = JSON.parse(bad.out)
    expect(report.tenants[0].problems.join()).toMatch(/book: checksums differ/)
    expect((await readLedger(db.pool, 'public')).get('1')?.verifyOk).toBe(false)
    const unknown = await cli('verify', '--tenant-id', '2')
    expect(unknown.code).toBe(1)
    expect(unknown.err).toMatch(/Tenant 2 has not been migrated/)
  })

  it('drop-schemas needs --yes and keeps a schema that does not verify', async () => {
    const noYes = await cli('drop-schemas')
    expect(noYes.code).toBe(1)
    expect(noYes.err).toMatch(/pass --yes/)
    const r = await cli('drop-schemas', '--tenant-id', '1', '--yes')
    expect(r.code).toBe(1)
    expect(r.out).toMatch(/tenant 1 \("acme"\): kept: book: checksums differ/)
    expect(await count(`select count(*) as n from pg_namespace where nspname = 'acme'`)).toBe(1)
  })

  it('rollback removes the tenant rows and its created tenants row; a rerun migrates it again', async () => {
    const r = await cli('rollback', '--tenant-id', '1')
    expect(r.code).toBe(0)
    expect(r.out).toMatch(/tenant 1: rolled back, \d+ rows removed, tenant row removed/)
    expect(await count('select count(*) as n from public.book where tenant_id = 1')).toBe(0)
    expect(await count('select count(*) as n from tenants where id = 1')).toBe(0)
    expect(await count('select count(*) as n from public.book where tenant_id = 3')).toBe(12)
    const again = await cli('rollback', '--tenant-id', '1')
    expect(again.code).toBe(1)
    expect(again.err).toMatch(/no migrated rows to roll back/)
    const re = await cli('migrate', '--tenant-id', '1')
    expect(re.code).toBe(0)
    expect(await count('select count(*) as n from public.book where tenant_id = 1')).toBe(10)
  })

  it('drop-schemas --yes drops verified schemas only; verify then checks against the ledger; rollback refuses', async () => {
    const r = await cli('drop-schemas', '--yes')
    expect(r.code).toBe(0)
    expect(r.out).toMatch(/tenant 1 \("acme"\): schema dropped/)
    expect(
      await count(`select count(*) as n from pg_namespace where nspname = any($1)`, [
        ['acme', HOSTILE_SCHEMA],
      ]),
    ).toBe(0)
    expect(await count(`select count(*) as n from pg_namespace where nspname = 'globex'`)).toBe(1)
    const v = await cli('verify', '--tenant-id', '1', '--tenant-id', '3')
    expect(v.code).toBe(0)
    await db.pool.query(`delete from public.book_tag where tenant_id = 3 and book_id = 1`)
    const v2 = await cli('verify', '--tenant-id', '3')
    expect(v2.code).toBe(1)
    expect(v2.out).toMatch(/book_tag: the target differs from what the ledger recorded/)
    const rb = await cli('rollback', '--tenant-id', '1')
    expect(rb.code).toBe(1)
    expect(rb.err).toMatch(/the only copy/)
  })
})

let collected = ''
function collect(): PassThrough {
  collected = ''
  const s = new PassThrough()
  s.on('data', (c) => (collected += c))
  return s
}
