import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { migrate } from '../src/entries/migrate.js'
import { distributeOnCitus, onCitus } from './helpers/citus.js'
import {
  migrateThroughKills,
  migrationTargetState,
  sourcesFingerprint,
  templateCopies,
} from './helpers/crash-harness.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'
import { buildLegacyFixture, FIXTURE_TABLES, HOSTILE_SCHEMA } from './helpers/legacy-fixture.js'

const SOURCES = [
  'acme',
  'globex',
  HOSTILE_SCHEMA,
  'tenant_10',
  'tenant_11',
  'tenant_12',
  'tenant_13',
  'tenant_14',
]
let original: TestDatabase
const copies = templateCopies()

const FIXTURE = { rows: 60, drift: false, extraTenants: 5 } as const
const citusCopies: TestDatabase[] = []

async function copyOf(name: string): Promise<string> {
  if (onCitus()) {
    // Citus metadata is per database and a template copy does not reach the workers: the
    // same deterministic fixture is built again and distributed (rowtenancy citus distribute).
    const d = await createTestDatabase(`crash_${name}`)
    citusCopies.push(d)
    await buildLegacyFixture(d.pool, FIXTURE)
    // Citus distributes no table with triggers (citus distribute refuses it by name)
    await d.pool.query('drop trigger finance_account_shout on public.finance_account')
    // SET CONSTRAINTS does not reach the shards: the cycle's key must be deferred by default
    await d.pool.query(
      'alter table public.author alter constraint author_favorite_fk deferrable initially deferred',
    )
    await distributeOnCitus(d.pool, undefined, d.name)
    return d.url
  }
  return copies.copyOf(original.name, name)
}

beforeAll(async () => {
  original = await createTestDatabase('migrate_crash')
  await buildLegacyFixture(original.pool, FIXTURE)
  await original.pool.end()
}, 120_000)
afterAll(async () => {
  for (const d of citusCopies) await d.drop()
  await copies.dropAll()
  await original?.drop()
})

describe('kill -9 mid-run, rerun: the same rows as a clean run', () => {
  it(
    'ends identical to a clean migration of a copy, sources untouched',
    async () => {
      const cleanUrl = await copyOf('clean')
      const crashUrl = await copyOf('crash')
      const sourcesBefore = await sourcesFingerprint(crashUrl, SOURCES)
      const cleanPool = new pg.Pool({ connectionString: cleanUrl, max: 3 })
      const clean = await migrate({ db: cleanPool, all: true, jobs: 2 })
      await cleanPool.end()
      expect(clean.ok).toBe(true)

      // Seeded kill points (event line numbers): right after the plan, mid-tenant, between tenants.
      let seed = 20261127
      const next = () => {
        seed = (seed * 1103515245 + 12345) % 2 ** 31
        return seed
      }
      const killPoints = [1, 4 + (next() % 8), 14 + (next() % 12), 26 + (next() % 20)]
      await migrateThroughKills(crashUrl, killPoints, SOURCES.length)

      const a = await migrationTargetState(cleanUrl, FIXTURE_TABLES, SOURCES)
      const b = await migrationTargetState(crashUrl, FIXTURE_TABLES, SOURCES)
      expect(b).toEqual(a)
      expect(b.sources).toBe(sourcesBefore)
    },
    onCitus() ? 400_000 : 120_000,
  ) // Citus: two fixtures built and distributed, slower shards
})
