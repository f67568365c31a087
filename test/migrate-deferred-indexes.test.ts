import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { migrate, verifyMigration } from '../src/entries/migrate.js'
import type { MigrationEvent } from '../src/migrate/events.js'
import { unbuiltIndexes } from '../src/migrate/index.js'
import { onCitus } from './helpers/citus.js'
import {
  migrateChild,
  migrationTargetState,
  runCliChild,
  templateCopies,
  withClient,
} from './helpers/crash-harness.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'
import { buildLegacyFixture, FIXTURE_TABLES, HOSTILE_SCHEMA } from './helpers/legacy-fixture.js'

const SOURCES = ['acme', 'globex', HOSTILE_SCHEMA, 'tenant_10', 'tenant_11', 'tenant_12']
/** Secondary indexes of the shared tables: the first three are dropped for the copy. */
const INDEXES = [
  'create index author_name_idx on public.author (name)',
  'create index book_title_idx on public.book (tenant_id, title)',
  `create index "odd ix ""q"" ü" on public."odd.tab""le ü" (tenant_id, lower("we""ird col")) where "we""ird col" is not null`,
  // kept: unique (a duplicate must fail its tenant), and on a partitioned table
  'create unique index tag_label_uq on public.tag (tenant_id, label)',
  'create index event_day_idx on public.event (tenant_id, happened_on)',
]
const DEFERRED = ['author_name_idx', 'book_title_idx', 'odd ix "q" ü']

let original: TestDatabase
const copies = templateCopies()

/** Every index of the public schema, with its definition. */
const indexDefinitions = (url: string) =>
  withClient(
    async (c) =>
      (
        await c.query(
          `select indexname, indexdef from pg_indexes where schemaname = 'public' and indexname not like 'rowtenancy%' order by 1`,
        )
      ).rows,
    url,
  )

async function run(url: string, options: { deferIndexes?: boolean; tenantIds?: string[] } = {}) {
  const pool = new pg.Pool({ connectionString: url, max: 4 })
  const events: MigrationEvent[] = []
  try {
    const report = await migrate({
      db: pool,
      jobs: 2,
      ...(options.tenantIds ? { tenantIds: options.tenantIds } : { all: true }),
      ...(options.deferIndexes === false ? { deferIndexes: false } : {}),
      onEvent: (e) => events.push(e),
    })
    return { report, events }
  } finally {
    await pool.end()
  }
}

const deferredBy = (events: readonly MigrationEvent[]) =>
  events.flatMap((e) => (e.type === 'indexes-deferred' ? [...e.indexes] : [])).sort()

beforeAll(async () => {
  original = await createTestDatabase('migrate_defer_ix')
  await buildLegacyFixture(original.pool, { rows: 40, drift: false, extraTenants: 3 })
  for (const s of INDEXES) await original.pool.query(s)
  await original.pool.end()
}, 120_000)
afterAll(async () => {
  await copies.dropAll()
  await original?.drop()
})

describe.skipIf(onCitus())('secondary indexes built after the copy', () => {
  it('an --all run into empty tables drops the plain ones first and builds them the same after', async () => {
    const url = await copies.copyOf(original.name, 'defer')
    const keepUrl = await copies.copyOf(original.name, 'keep')
    const before = await indexDefinitions(url)
    const { report, events } = await run(url)
    expect(report.ok).toBe(true)
    expect(deferredBy(events)).toEqual(DEFERRED)
    expect([...report.builtIndexes].sort()).toEqual(DEFERRED)
    expect(await indexDefinitions(url)).toEqual(before)
    const kept = await run(keepUrl, { deferIndexes: false })
    expect(kept.report.ok).toBe(true)
    expect(deferredBy(kept.events)).toEqual([])
    expect(kept.report.builtIndexes).toEqual([])
    expect(await migrationTargetState(url, FIXTURE_TABLES, SOURCES)).toEqual(
      await migrationTargetState(keepUrl, FIXTURE_TABLES, SOURCES),
    )
    const pool = new pg.Pool({ connectionString: url, max: 2 })
    try {
      expect(await unbuiltIndexes(pool, 'public')).toEqual([])
      const verified = await verifyMigration({ db: pool })
      expect(verified.ok).toBe(true)
      expect(verified.unbuiltIndexes).toEqual([])
    } finally {
      await pool.end()
    }
  }, 60_000)

  it('leaves the indexes alone when a shared table already holds rows', async () => {
    const url = await copies.copyOf(original.name, 'occupied')
    const first = await run(url, { tenantIds: ['1'] })
    expect(first.report.ok).toBe(true)
    expect(deferredBy(first.events)).toEqual([])
    const rest = await run(url)
    expect(rest.report.ok).toBe(true)
    expect(deferredBy(rest.events)).toEqual([])
    expect(rest.report.builtIndexes).toEqual([])
  }, 60_000)

  it('an index that cannot be built again stops the run with its name and the fix, and stays recorded', async () => {
    const url = await copies.copyOf(original.name, 'unbuildable')
    await withClient(
      (c) =>
        c.query(
          'create index book_broken_idx on public.book (tenant_id, (1 / (length(title) - length(title))))',
        ),
      url,
    )
    await expect(run(url)).rejects.toThrow(
      /Building the index "book_broken_idx" .* division by zero/,
    )
    const pool = new pg.Pool({ connectionString: url, max: 2 })
    try {
      expect((await unbuiltIndexes(pool, 'public')).map((i) => i.name)).toContain('book_broken_idx')
      expect((await verifyMigration({ db: pool, record: false })).ok).toBe(false)
    } finally {
      await pool.end()
    }
  }, 60_000)

  it('kill -9 between the last tenant and the index builds: verify says so, a rerun builds them', async () => {
    const cleanUrl = await copies.copyOf(original.name, 'clean')
    const url = await copies.copyOf(original.name, 'crash')
    const before = await indexDefinitions(url)
    expect((await run(cleanUrl)).report.ok).toBe(true)
    // The index builds wait for this lock (taken once the indexes are dropped); the run is
    // killed while it waits, after every tenant is done.
    const holder = new pg.Client({ connectionString: url })
    await holder.connect()
    let locked: Promise<unknown> | undefined
    let tenantsDone = 0
    const crashed = await runCliChild(
      ['migrate-to-row-tenancy', '--all', '--jobs', '2', '--json', '--database-url', url],
      {
        onLine: (line, _i, child) => {
          const e = JSON.parse(line) as { type: string }
          if (e.type === 'indexes-deferred') {
            locked = holder.query(
              'begin; lock table public.rowtenancy_deferred_index in share mode',
            )
          }
          if (e.type === 'tenant-done' && ++tenantsDone === SOURCES.length) {
            void waitForLockWait(url).then(() => child.kill('SIGKILL'))
          }
        },
      },
    )
    await locked
    await holder.query('rollback')
    await holder.end()
    expect(crashed.signal).toBe('SIGKILL')
    const pool = new pg.Pool({ connectionString: url, max: 2 })
    try {
      expect((await unbuiltIndexes(pool, 'public')).map((i) => i.name).sort()).toEqual(DEFERRED)
      const verified = await verifyMigration({ db: pool, record: false })
      expect(verified.ok).toBe(false)
      expect([...verified.unbuiltIndexes].sort()).toEqual(DEFERRED)
      expect(verified.missing).toEqual([])
    } finally {
      await pool.end()
    }
    await expectRerunLikeClean(url, cleanUrl, before)
  }, 120_000)

  it('kill -9 mid-copy with the indexes dropped: the rerun finishes the tenants and builds them', async () => {
    const cleanUrl = await copies.copyOf(original.name, 'clean2')
    const url = await copies.copyOf(original.name, 'midway')
    const before = await indexDefinitions(url)
    expect((await run(cleanUrl)).report.ok).toBe(true)
    let tenantsDone = 0
    const crashed = await runCliChild(
      ['migrate-to-row-tenancy', '--all', '--jobs', '1', '--json', '--database-url', url],
      {
        onLine: (line, _i, child) => {
          if ((JSON.parse(line) as { type: string }).type === 'tenant-done' && ++tenantsDone === 2)
            child.kill('SIGKILL')
        },
      },
    )
    expect(crashed.signal).toBe('SIGKILL')
    const pool = new pg.Pool({ connectionString: url, max: 2 })
    try {
      expect((await unbuiltIndexes(pool, 'public')).length).toBe(DEFERRED.length)
    } finally {
      await pool.end()
    }
    // The rerun finds rows in the shared tables: it drops nothing more, and builds what is recorded.
    await expectRerunLikeClean(url, cleanUrl, before)
  }, 120_000)
})

/** Resolves once a backend of `url` waits for a lock on the deferred-index table. */
async function waitForLockWait(url: string): Promise<void> {
  const db = new URL(url).pathname.slice(1)
  for (let i = 0; i < 200; i++) {
    const waiting = await withClient(async (c) => {
      const { rows } = await c.query(
        `select count(*)::int as n from pg_stat_activity
          where datname = $1 and wait_event_type = 'Lock' and query ilike '%rowtenancy_deferred_index%'`,
        [db],
      )
      return rows[0].n > 0
    })
    if (waiting) return
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error('the index builds never waited for the lock')
}

/** A rerun of the CLI on `url` exits 0 and ends with `before`'s indexes and the clean run's rows. */
async function expectRerunLikeClean(url: string, cleanUrl: string, before: unknown): Promise<void> {
  const rerun = await migrateChild(url)
  expect(rerun.code, rerun.stderr).toBe(0)
  expect(await indexDefinitions(url)).toEqual(before)
  expect(await migrationTargetState(url, FIXTURE_TABLES, SOURCES)).toEqual(
    await migrationTargetState(cleanUrl, FIXTURE_TABLES, SOURCES),
  )
}
