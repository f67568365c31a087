import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { migrate } from '../src/entries/migrate.js'
import { onCitus } from './helpers/citus.js'
import { templateCopies, withClient } from './helpers/crash-harness.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'
import { buildLegacyFixture } from './helpers/legacy-fixture.js'

/**
 * The migration's connections (the plan on one, the flush and the sequence moves on two): a run
 * on a pool of 1 or 2 connections (jobs above the pool size too) must neither hang nor leave a
 * sequence behind its table, also on a rerun with nothing left to copy (the sequences move on
 * `copiedBefore`). `tag` is made large so the loose scan is taken for it.
 */
let original: TestDatabase
const copies = templateCopies()

beforeAll(async () => {
  original = await createTestDatabase('small_pools')
  await buildLegacyFixture(original.pool, { rows: 20, drift: false, extraTenants: 2 })
  await original.pool.query(
    `insert into acme.tag (label) select 'bulk ' || g from generate_series(1, 25000) g; analyze acme.tag`,
  )
  await original.pool.end()
}, 120_000)
afterAll(async () => {
  await copies.dropAll()
  await original?.drop()
})

/** nextval > max for each serial of the shared tables. */
async function sequencesPast(url: string): Promise<Record<string, boolean>> {
  return withClient(async (c) => {
    const out: Record<string, boolean> = {}
    for (const [t, col] of [
      ['tag', 'id'],
      ['book', 'id'],
      ['film', 'film_id'],
      ['finance_account', 'id'],
    ] as const) {
      const { rows } = await c.query(
        `select nextval(pg_get_serial_sequence('public.${t}', '${col}')) > (select coalesce(max(${col}), 0) from public.${t}) as ok`,
      )
      out[t] = rows[0].ok
    }
    return out
  }, url)
}

describe.skipIf(onCitus())('small pools', () => {
  for (const [max, jobs] of [
    [1, 1],
    [1, 2],
    [2, 2],
    [2, 4],
  ] as const) {
    it(`pool max ${max}, jobs ${jobs}: the run ends, the sequences are past the copied ids, a rerun too`, async () => {
      const url = await copies.copyOf(original.name, `p${max}_j${jobs}`)
      for (const round of [1, 2]) {
        const pool = new pg.Pool({ connectionString: url, max })
        try {
          const report = await migrate({ db: pool, jobs, all: true })
          expect(report.ok, `round ${round}`).toBe(true)
        } finally {
          await pool.end()
        }
      }
      expect(await sequencesPast(url)).toEqual({
        tag: true,
        book: true,
        film: true,
        finance_account: true,
      })
    }, 60_000)
  }
})
