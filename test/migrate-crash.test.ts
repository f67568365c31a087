import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { migrate } from '../src/entries/migrate.js'
import { quoteIdent } from '../src/sql/quote.js'
import { distributeOnCitus, onCitus } from './helpers/citus.js'
import { createTestDatabase, serverUrl, type TestDatabase, urlFor } from './helpers/db.js'
import {
  buildLegacyFixture,
  FIXTURE_TABLES,
  HOSTILE_SCHEMA,
  schemaFingerprint,
} from './helpers/legacy-fixture.js'

const root = fileURLToPath(new URL('..', import.meta.url))
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
const copies: string[] = []

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: serverUrl() })
  await c.connect()
  try {
    return await fn(c)
  } finally {
    await c.end()
  }
}

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
  const copy = `${original.name}_${name}`
  await admin((c) =>
    c.query(`create database ${quoteIdent(copy)} template ${quoteIdent(original.name)}`),
  )
  copies.push(copy)
  return urlFor(copy)
}

/** Everything the migration writes, as comparable text: rows per tenant and table, tenants, domains, sequences, ledger states. */
async function targetState(url: string): Promise<Record<string, string>> {
  const pool = new pg.Pool({ connectionString: url, max: 2 })
  try {
    const out: Record<string, string> = {}
    for (const t of FIXTURE_TABLES) {
      const { rows } = await pool.query(
        `select tenant_id::text as id, count(*)::text || ':' || sum(hashtextextended(x::text, 0))::text as f
           from public.${quoteIdent(t)} x group by 1 order by 1`,
      )
      for (const r of rows) out[`${t}@${r.id}`] = r.f
    }
    const q = async (sql: string) => JSON.stringify((await pool.query(sql)).rows)
    out.tenants = await q('select id, slug, name, status from tenants order by id')
    out.domains = await q('select * from tenant_domains order by domain')
    out.sequences = await q(
      `select sequencename, last_value from pg_sequences where schemaname = 'public' order by 1`,
    )
    out.ledger = await q(
      'select tenant_id, state, tables from rowtenancy_migration order by tenant_id',
    )
    out.sources = JSON.stringify(await schemaFingerprint(pool, SOURCES))
    return out
  } finally {
    await pool.end()
  }
}

async function doneTenants(url: string): Promise<number> {
  const c = new pg.Client({ connectionString: url })
  await c.connect()
  try {
    const { rows } = await c
      .query(`select count(*)::int as n from rowtenancy_migration where state = 'done'`)
      .catch(() => ({ rows: [{ n: 0 }] }))
    return rows[0].n
  } finally {
    await c.end()
  }
}

/** Runs the CLI as a child; with `killAfter`, SIGKILLs it on that JSON event line. */
function runChild(
  url: string,
  killAfter?: number,
): Promise<{ code: number | null; killed: boolean; events: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        'src/cli/main.ts',
        'migrate-to-row-tenancy',
        '--all',
        '--jobs',
        '2',
        '--json',
        '--database-url',
        url,
      ],
      { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] },
    )
    let events = 0
    let killed = false
    let buffer = ''
    child.stdout.on('data', (chunk: Buffer) => {
      buffer += chunk.toString()
      let nl = buffer.indexOf('\n')
      while (nl >= 0) {
        buffer = buffer.slice(nl + 1)
        events++
        if (killAfter !== undefined && events === killAfter && !killed) {
          killed = true
          child.kill('SIGKILL')
        }
        nl = buffer.indexOf('\n')
      }
    })
    child.on('error', reject)
    child.on('exit', (code) => resolve({ code, killed, events }))
  })
}

beforeAll(async () => {
  original = await createTestDatabase('migrate_crash')
  await buildLegacyFixture(original.pool, FIXTURE)
  await original.pool.end()
}, 120_000)
afterAll(async () => {
  for (const d of citusCopies) await d.drop()
  for (const c of copies)
    await admin((a) => a.query(`drop database if exists ${quoteIdent(c)} with (force)`))
  await original?.drop()
})

describe('kill -9 mid-run, rerun: the same rows as a clean run', () => {
  it(
    'ends identical to a clean migration of a copy, sources untouched',
    async () => {
      const cleanUrl = await copyOf('clean')
      const crashUrl = await copyOf('crash')
      const sourcesBefore = JSON.stringify(
        await (async () => {
          const p = new pg.Pool({ connectionString: crashUrl, max: 1 })
          try {
            return await schemaFingerprint(p, SOURCES)
          } finally {
            await p.end()
          }
        })(),
      )
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
      const kills: number[] = []
      const doneAfterKill: number[] = []
      for (const at of killPoints) {
        const r = await runChild(crashUrl, at)
        if (!r.killed) continue
        kills.push(at)
        doneAfterKill.push(await doneTenants(crashUrl))
      }
      expect(kills.length).toBeGreaterThanOrEqual(3)
      // the kills really landed mid-run: some tenants finished, others not yet
      expect(
        doneAfterKill.some((n) => n > 0 && n < SOURCES.length),
        String(doneAfterKill),
      ).toBe(true)
      let final = await runChild(crashUrl)
      for (let i = 0; i < 3 && final.code !== 0; i++) final = await runChild(crashUrl)
      expect(final.code).toBe(0)

      const a = await targetState(cleanUrl)
      const b = await targetState(crashUrl)
      expect(b).toEqual(a)
      expect(b.sources).toBe(sourcesBefore)
    },
    onCitus() ? 400_000 : 120_000,
  ) // Citus: two fixtures built and distributed, slower shards
})
