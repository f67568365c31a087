import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { migrate } from '../src/entries/migrate.js'
import { introspectSchemas } from '../src/sql/catalog/index.js'
import { templateCopies, withClient } from './helpers/crash-harness.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'
import { buildLegacyFixture } from './helpers/legacy-fixture.js'

/**
 * The connections a migration's preparation takes: the early connection lent to the plan's
 * reads (released on every path; not held when a caller waits for the pool's last one), two
 * runs at once, and the catalog summary of a foreign key that names one column twice.
 */

let original: TestDatabase
const copies = templateCopies()

beforeAll(async () => {
  original = await createTestDatabase('plan_connections')
  await buildLegacyFixture(original.pool, { rows: 20, drift: false, extraTenants: 2 })
  await original.pool.end()
}, 120_000)
afterAll(async () => {
  await copies.dropAll()
  await original?.drop()
})

const ledgerExists = (url: string) =>
  withClient(async (c) => {
    const { rows } = await c.query(
      "select to_regclass('public.rowtenancy_migration') is not null as ok",
    )
    return rows[0].ok as boolean
  }, url)

/** Every connection the pool checked out came back. */
function allBack(pool: pg.Pool) {
  return { total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount }
}

describe('prepare: lent connection', () => {
  for (const variant of [
    { name: 'composite', options: {} },
    { name: 'dry run', options: { dryRun: true } },
    { name: 'remap', options: { idStrategy: 'remap' as const } },
  ]) {
    it(`${variant.name}: a failing plan (unknown tenant id) returns every connection and leaves no ledger`, async () => {
      const url = await copies.copyOf(original.name, `fail_${variant.name}`)
      const pool = new pg.Pool({ connectionString: url, max: 3 })
      try {
        await expect(migrate({ db: pool, tenantIds: ['999'], ...variant.options })).rejects.toThrow(
          /Unknown tenant id/,
        )
        // back once the rejection's cleanup has run (how soon depends on the machine's load)
        await vi.waitFor(
          () => {
            const s = allBack(pool)
            expect(s.idle).toBe(s.total)
            expect(s.waiting).toBe(0)
          },
          { timeout: 10_000, interval: 20 },
        )
        expect(await ledgerExists(url)).toBe(false)
        // and the pool still works, and a run goes through
        const report = await migrate({ db: pool, all: true, ...variant.options })
        expect(report.ok).toBe(true)
        const t = allBack(pool)
        expect(t.idle).toBe(t.total)
      } finally {
        await pool.end()
      }
    }, 60_000)
  }

  it('two runs at once on one database: both end, every tenant copied once', async () => {
    const url = await copies.copyOf(original.name, 'concurrent')
    const pools = [0, 1].map(() => new pg.Pool({ connectionString: url, max: 4 }))
    try {
      const reports = await Promise.all(
        pools.map((pool) => migrate({ db: pool, all: true, jobs: 2 })),
      )
      for (const r of reports) expect(r.totals.failed).toBe(0)
      const counts = await withClient(async (c) => {
        const { rows } = await c.query(
          'select tenant_id::text, count(*)::int as n from public.book group by 1 order by 1',
        )
        return rows
      }, url)
      const source = await withClient(async (c) => {
        const out = []
        const { rows: schemas } = await c.query(
          'select quote_ident(schema_name) as s from public.customers_client',
        )
        for (const { s } of schemas) {
          const { rows } = await c.query(`select count(*)::int as n from ${s}.book`)
          out.push(rows[0].n)
        }
        return out
      }, url)
      expect(counts.map((r: { n: number }) => r.n).sort()).toEqual(source.sort())
    } finally {
      for (const p of pools) await p.end()
    }
  }, 60_000)

  // A caller holding one of a pool-of-2's connections: the early connection is neither held
  // for the ledger's creation nor lent, else the plan would wait for a connection forever.
  for (const variant of [
    { name: 'dry run', options: { dryRun: true } },
    { name: 'remap dry run', options: { dryRun: true, idStrategy: 'remap' as const } },
    { name: 'remap', options: { idStrategy: 'remap' as const } },
    { name: 'composite', options: {} },
  ]) {
    it(`${variant.name}, pool max 2 with one connection held by the caller: ends`, async () => {
      const url = await copies.copyOf(original.name, `h_${variant.name}`)
      const pool = new pg.Pool({ connectionString: url, max: 2 })
      const held = await pool.connect()
      try {
        const run = migrate({ db: pool, all: true, ...variant.options })
        const outcome = await Promise.race([
          run.then(
            (r) => `ended ok=${r.ok}`,
            (e) => `threw ${e.message}`,
          ),
          // a run takes well under a second here; a plan waiting for the held connection never ends
          new Promise((r) => setTimeout(() => r('still waiting after 20 s'), 20_000)),
        ])
        held.release()
        await run.catch(() => {})
        expect(outcome).toMatch(/^ended/)
      } finally {
        await pool.end()
      }
    }, 60_000)
  }
})

describe('SUMMARY_CONSTRAINTS', () => {
  it('a foreign key naming one column twice: columns and ref_columns stay pairwise', async () => {
    const db = await createTestDatabase('plan_conn_fk')
    try {
      await db.pool.query(`
        create schema k;
        create table k.p (c int, a int, primary key (c, a));
        create table k.d (x int);
        alter table k.d add constraint dup foreign key (x, x) references k.p (c, a);`)
      const t = (await introspectSchemas(db.pool, ['k'])).get('k')!.get('d')!
      const fk = t.foreignKeys[0]!
      expect(fk.refColumns).toEqual(['c', 'a'])
      expect(fk.columns).toEqual(['x', 'x'])
    } finally {
      await db.drop()
    }
  })
})

describe('SUMMARY_CONSTRAINTS consumer', () => {
  it('the orphan check of a key naming one column twice compares both referenced columns', async () => {
    const { orphanStatement } = await import('../src/migrate/copy-sql.js')
    const db = await createTestDatabase('plan_conn_orph')
    try {
      await db.pool.query(`
        create schema k;
        create table k.p (c int, a int, primary key (c, a));
        create table k.d (tenant_id int, x int);
        alter table k.d add constraint dup foreign key (x, x) references k.p (c, a);`)
      const target = (await introspectSchemas(db.pool, ['k'])).get('k')!.get('d')!
      const ctx = { targetSchema: 'k', tenantId: '1', idType: 'int' } as any
      const text = orphanStatement(ctx, { name: 'd', target } as any)!.statement.text
      expect(text).toContain('p."a" = c."x"')
    } finally {
      await db.drop()
    }
  })
})
