import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { migrate, verifyMigration } from '../src/migrate/index.js'
import { applyTenantSchema } from '../src/schema/generate/index.js'
import { quoteIdent } from '../src/sql/quote.js'
import { installTenantTables } from '../src/tenants/index.js'
import {
  columnNames,
  createCorpusTenant,
  HOSTILE_NAMES,
  STORE,
  translated,
} from './helpers/corpus.js'
import { migrateThroughKills, sourcesFingerprint, templateCopies } from './helpers/crash-harness.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'

const SOURCES = [...HOSTILE_NAMES, 'Tenant Five', 'tenant_6', 'tenant_7', 'tenant_8']
let original: TestDatabase
const copies = templateCopies()
const copyOf = (label: string) => copies.copyOf(original.name, label)

type Strategy = 'composite' | 'remap'

/**
 * Rows per tenant and table of the target (fingerprints), tenants, sequences, ledger states,
 * sources. remap: the new ids depend on the order tenants drew them (a killed run burns
 * sequence values), so rows are compared with every renumbered column translated back
 * through the id map, sequences by being above every id, the ledger by row counts.
 */
async function targetState(url: string, strategy: Strategy): Promise<Record<string, string>> {
  const pool = new pg.Pool({ connectionString: url, max: 2 })
  try {
    const out: Record<string, string> = {}
    for (const t of STORE.tables) {
      const cols = (await columnNames(pool, 'public', t)).filter((c) => c !== 'tenant_id')
      const tenants = await pool.query(
        `select distinct tenant_id::int as id from public.${quoteIdent(t)}`,
      )
      for (const { id } of tenants.rows) {
        const from =
          strategy === 'remap' ? translated(t, id, cols, STORE.remapped) : `public.${quoteIdent(t)}`
        const row = cols.map((c) => `x.${quoteIdent(c)}`).join(', ')
        const { rows } = await pool.query(
          `select count(*)::text || ':' || sum(hashtextextended(row(${row})::text, 0))::text as f
             from ${from} x where x.tenant_id = ${id}`,
        )
        out[`${t}@${id}`] = rows[0].f
      }
    }
    const q = async (sql: string) => JSON.stringify((await pool.query(sql)).rows)
    out.tenants = await q('select id, slug, name, status from tenants order by id')
    out.sequences =
      strategy === 'composite'
        ? await q(
            `select sequencename, last_value from pg_sequences where schemaname = 'public' order by 1`,
          )
        : await q(
            `select s.sequencename, coalesce(s.last_value, 0) >= coalesce((select max(x.n) from (${STORE.tables
              .flatMap((t) =>
                Object.entries(STORE.remapped[t] ?? {})
                  .filter(([, via]) => via === t)
                  .map(
                    ([c]) =>
                      `select max(${quoteIdent(c)})::int8 as n, pg_get_serial_sequence('public.${t}', '${c}') as seq from public.${quoteIdent(t)}`,
                  ),
              )
              .join(' union all ')}) x where x.seq = 'public.' || s.sequencename), 0) as above
               from pg_sequences s where s.schemaname = 'public' order by 1`,
          )
    out.ledger = await q(
      strategy === 'composite'
        ? 'select tenant_id, state, tables from rowtenancy_migration order by tenant_id'
        : `select tenant_id, state, (select jsonb_object_agg(k, v -> 'rows') from jsonb_each(tables) e(k, v)) as rows
             from rowtenancy_migration order by tenant_id`,
    )
    if (strategy === 'remap') {
      out.idMap = await q(
        `select tenant_id, table_name, count(*)::int as n, count(distinct new_id)::int as d
           from rowtenancy_id_map group by 1, 2 order by 1, 2`,
      )
    }
    out.sources = await sourcesFingerprint(url, SOURCES)
    return out
  } finally {
    await pool.end()
  }
}

beforeAll(async () => {
  original = await createTestDatabase('corpus_crash')
  const db = original.pool
  await installTenantTables(db, { idType: 'bigint' })
  await db.query(
    'create table public.customers_client (id int primary key, schema_name text not null unique, name text not null)',
  )
  for (const [i, schema] of SOURCES.entries()) {
    await createCorpusTenant(db, STORE, schema, i + 1)
    await db.query('insert into public.customers_client values ($1, $2, $3)', [
      i + 1,
      schema,
      `Tenant ${i + 1}`,
    ])
  }
  await applyTenantSchema(db, { fromSchema: HOSTILE_NAMES[0] })
  await db.end()
}, 120_000)
afterAll(async () => {
  await copies.dropAll()
  await original?.drop()
})

describe.each(['composite', 'remap'] as const)(
  'corpus store (%s): kill -9 mid-run, rerun',
  (strategy) => {
    it('ends identical to a clean migration of a copy, sources untouched', async () => {
      const cleanUrl = await copyOf(`clean_${strategy}`)
      const crashUrl = await copyOf(`crash_${strategy}`)
      const sourcesBefore = await sourcesFingerprint(crashUrl, SOURCES)
      const cleanPool = new pg.Pool({ connectionString: cleanUrl, max: 3 })
      const clean = await migrate({ db: cleanPool, all: true, jobs: 2, idStrategy: strategy })
      await cleanPool.end()
      expect(clean.ok, JSON.stringify(clean.tenants.filter((t) => t.status !== 'migrated'))).toBe(
        true,
      )
      // Kill points (JSON event lines): right after the plan, inside a tenant, later on.
      await migrateThroughKills(crashUrl, [1, 7, 23, 41], SOURCES.length, [
        '--id-strategy',
        strategy,
      ])
      const a = await targetState(cleanUrl, strategy)
      const b = await targetState(crashUrl, strategy)
      expect(b).toEqual(a)
      if (strategy === 'remap')
        expect(JSON.parse(b.sequences!).every((x: { above: boolean }) => x.above)).toBe(true)
      const pool = new pg.Pool({ connectionString: crashUrl, max: 2 })
      const verified = await verifyMigration({ db: pool }).finally(() => pool.end())
      expect(verified.ok, JSON.stringify(verified)).toBe(true)
      expect(b.sources).toBe(sourcesBefore)
    }, 180_000)
  },
)
