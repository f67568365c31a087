/**
 * Migrate while serving: the finance demo's API runs with `hybrid: true` under a
 * bounded load generator (every tenant reading and writing, a ledger of the
 * acknowledged writes) while `migrate-to-row-tenancy --online` cuts every tenant
 * over, also across kill -9 of the migration at seeded points and a rerun, and
 * while one tenant is moved back (`rollbackOnline`) and over again. Asserted:
 * no failed request but the documented retryable 503 (`TENANT_MIGRATING`, with
 * Retry-After), every acknowledged write found where the tenant is served from
 * afterwards, every tenant in exactly one place at every check.
 */
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startFinanceApi } from '../examples/finance/app.js'
import type { LegacySummary } from '../examples/finance/legacy/generate.js'
import { rollbackOnline } from '../src/migrate/online/index.js'
import { quoteIdent } from '../src/sql/quote.js'
import { cli } from './helpers/cli.js'
import { createTestDatabase, dropRoles, type TestDatabase } from './helpers/db.js'
import { legacyWithSharedTables } from './helpers/generated-legacy.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const TENANTS = 6

let db: TestDatabase
let legacy: LegacySummary
let runtimeUrl: string
const role = `rt_online_${randomBytes(3).toString('hex')}`

beforeAll(async () => {
  db = await createTestDatabase('online')
  ;({ legacy, runtimeUrl } = await legacyWithSharedTables(db, role, {
    tenants: TENANTS,
    seed: 5,
    scale: 0.05,
  }))
}, 180_000)

afterAll(async () => {
  await db?.drop()
  await dropRoles([role])
}, 60_000)

/** One child run of migrateOnline that SIGKILLs itself at the nth tenant reaching `phase`. */
function crashingRun(
  phase: string,
  nth: number,
): Promise<{ signal: string | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        'test/helpers/online-child.ts',
        JSON.stringify({ url: db.url, jobs: 1, crashAt: { phase, nth } }),
      ],
      { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] },
    )
    let stderr = ''
    child.stderr.on('data', (d) => {
      stderr += d
    })
    child.on('error', reject)
    child.on('exit', (_code, signal) => resolve({ signal, stderr }))
  })
}

interface Ack {
  readonly tenant: string
  readonly kind: 'transaction' | 'account'
  readonly key: string
}

/** The bounded load: one sequential worker per tenant, writes and reads, a ledger of acknowledged writes. */
function startLoad(url: string, tenants: readonly string[]) {
  const acks: Ack[] = []
  const failures: string[] = []
  let retryable = 0
  let ok = 0
  let stop = false
  const send = async (tenant: string, method: string, path: string, body?: unknown) => {
    for (;;) {
      const r = await fetch(url + path, {
        method,
        headers: { 'x-tenant-id': tenant, 'content-type': 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      })
      const json = (await r.json()) as any
      if (r.status === 503 && json.error === 'TENANT_MIGRATING' && r.headers.get('retry-after')) {
        retryable++
        await new Promise((res) => setTimeout(res, 20))
        continue // nothing was done: the same request again
      }
      if (r.status >= 400)
        failures.push(`${method} ${path} (${tenant}): ${r.status} ${JSON.stringify(json)}`)
      else ok++
      return { status: r.status, json }
    }
  }
  const worker = async (tenant: string) => {
    const accounts = (await send(tenant, 'GET', '/accounts')).json.accounts as { id: string }[]
    const mine = new Set<string>()
    for (let n = 0; !stop; n++) {
      const account = accounts[n % accounts.length]!.id
      const description = `load-${tenant}-${n}`
      const w = await send(tenant, 'POST', `/accounts/${account}/transactions`, {
        amount: '1.00',
        description,
      })
      if (w.status === 201) acks.push({ tenant, kind: 'transaction', key: description })
      if (n % 5 === 0) {
        const name = `load account ${tenant}-${n}`
        const a = await send(tenant, 'POST', '/accounts', { name })
        if (a.status === 201) {
          acks.push({ tenant, kind: 'account', key: name })
          mine.add(name)
        }
        // read your writes, whichever side of a cut-over the read lands on
        const list = (await send(tenant, 'GET', '/accounts')).json.accounts as { name: string }[]
        const names = new Set(list.map((x) => x.name))
        for (const m of mine)
          if (!names.has(m)) failures.push(`account ${m} of ${tenant} not read back`)
      } else await send(tenant, 'GET', `/accounts/${account}/balance`)
      // bounded: a few requests per tenant every 10 ms at most
      await new Promise((res) => setTimeout(res, 10))
    }
  }
  const done = Promise.all(tenants.map((t) => worker(t)))
  return {
    acks,
    failures,
    stats: () => ({ ok, retryable, acks: acks.length }),
    async stop() {
      stop = true
      await done
    },
  }
}

async function placements(): Promise<Map<string, string>> {
  const { rows } = await db.pool.query(
    'select tenant_id::text as id, placement from rowtenancy_serving order by 1',
  )
  return new Map(rows.map((r) => [r.id, r.placement]))
}

/** Every acknowledged write of the ledger, where its tenant is served from now (one read per tenant and table). */
async function missingAcks(ledger: readonly Ack[]): Promise<string[]> {
  // acknowledged before the reads below (the load goes on meanwhile)
  const acks = ledger.slice()
  const placed = await placements()
  const schemaOf = new Map(legacy.tenants.map((t) => [String(t.id), t.schema]))
  const found = new Map<string, Set<string>>()
  for (const tenant of schemaOf.keys()) {
    const onSchema = placed.get(tenant) === 'schema'
    for (const [kind, table, column] of [
      ['transaction', 'finance_transaction', 'description'],
      ['account', 'finance_account', 'name'],
    ] as const) {
      const { rows } = onSchema
        ? await db.pool.query(
            `select ${column} as k from ${quoteIdent(schemaOf.get(tenant)!)}.${table}`,
          )
        : await db.pool.query(
            `select ${column} as k from public.${table} where tenant_id = $1::bigint`,
            [tenant],
          )
      const keys = new Set<string>()
      const twice = new Set<string>()
      for (const r of rows) (keys.has(r.k) ? twice : keys).add(r.k)
      found.set(`${tenant}:${kind}`, keys)
      found.set(`${tenant}:${kind}:twice`, twice)
    }
  }
  return acks
    .filter((a) => {
      const key = `${a.tenant}:${a.kind}`
      return !found.get(key)!.has(a.key) || found.get(`${key}:twice`)!.has(a.key)
    })
    .map(
      (a) =>
        `${a.tenant} (${placed.get(a.tenant)}) ${a.kind} ${a.key}: ${found.get(`${a.tenant}:${a.kind}`)!.has(a.key) ? 'twice' : 'missing'}`,
    )
}

describe('migrate-to-row-tenancy --online', () => {
  it('bad input: clear errors, exit 1, nothing written', async () => {
    const bad = [
      [['--all', '--online', '--fence-timeout', 'soon'], /--fence-timeout must be milliseconds/],
      [['--all', '--online', '--fence-timeout', '0'], /--fence-timeout must be milliseconds/],
      [['--all', '--fence-timeout', '100'], /--fence-timeout goes with --online/],
      [['--all', '--online', '--dry-run'], /--dry-run and --online do not go together/],
      [['--all', '--online', '--grant-to', 'no_such_role_x'], /no such role/],
    ] as const
    for (const [args, message] of bad) {
      const r = await cli(['migrate-to-row-tenancy', ...args, '--database-url', db.url])
      expect(r.code, args.join(' ')).toBe(1)
      expect(r.stderr).toMatch(message)
    }
    const { rows } = await db.pool.query("select to_regclass('public.rowtenancy_serving') as t")
    expect(rows[0].t).toBeNull()
  }, 120_000)

  it('serves every tenant while they are cut over, across kill -9 and a rerun; nothing lost', async () => {
    const prepare = await cli([
      'migrate-to-row-tenancy',
      '--all',
      '--online',
      '--prepare',
      '--grant-to',
      role,
      '--database-url',
      db.url,
    ])
    expect(prepare.code, prepare.stderr).toBe(0)
    expect([...(await placements()).values()]).toEqual(Array(TENANTS).fill('schema'))
    const tenants = legacy.tenants.map((t) => String(t.id))
    const api = await startFinanceApi({
      runtimeUrl,
      ownerUrl: db.url,
      adminToken: 't',
      hybrid: true,
    })
    const load = startLoad(api.url, tenants)
    try {
      // kill -9 at seeded points: inside the second cut-over (fence held), after the third
      // copy, before the fifth tenant's triggers; every tenant in exactly one place after each
      for (const [phase, nth] of [
        ['fenced', 2],
        ['catching-up', 1],
        ['copying', 2],
      ] as const) {
        const run = await crashingRun(phase, nth)
        expect(run.signal, run.stderr).toBe('SIGKILL')
        const placed = await placements()
        expect(placed.size).toBe(TENANTS)
        for (const p of placed.values()) expect(['schema', 'shared']).toContain(p)
        expect(await missingAcks(load.acks)).toEqual([])
        if (phase === 'fenced') {
          // a TRUNCATE would escape the change log: refused on a captured legacy table
          const captured = await db.pool.query(
            `select c.oid::regclass::text as t from pg_trigger g join pg_class c on c.oid = g.tgrelid
              where g.tgname = 'rowtenancy_capture_trn' limit 1`,
          )
          expect(captured.rows).toHaveLength(1)
          await expect(db.pool.query(`truncate ${captured.rows[0].t} cascade`)).rejects.toThrow(
            /refused while an online migration captures its changes/,
          )
        }
      }
      const r = await cli([
        'migrate-to-row-tenancy',
        '--all',
        '--online',
        '--jobs',
        '2',
        '--fence-timeout',
        '3000',
        '--json',
        '--database-url',
        db.url,
      ])
      expect(r.code, r.stderr + r.stdout).toBe(0)
      const events = r.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l))
      const report = events.at(-1)
      expect(report.type).toBe('report')
      expect(report.ok).toBe(true)
      expect(events.some((e) => e.type === 'online-tenant' && e.phase === 'fenced')).toBe(true)
      console.info(
        `online: fence p50 ${report.fence.p50} ms, p95 ${report.fence.p95} ms, max ${report.fence.max} ms over ${report.fence.count} tenants; load so far`,
        load.stats(),
      )
      expect([...(await placements()).values()]).toEqual(Array(TENANTS).fill('shared'))

      // one tenant moved back to its schema and over again, still under load
      const back = tenants[2]!
      const moved = await rollbackOnline({ db: db.pool, tenantId: back })
      console.info(
        `online: moved tenant ${back} back to its schema, fence ${moved.fenceMs.toFixed(0)} ms`,
      )
      expect((await placements()).get(back)).toBe('schema')
      expect(await missingAcks(load.acks)).toEqual([])
      await new Promise((res) => setTimeout(res, 1_500))
      const again = await cli([
        'migrate',
        '--all',
        '--online',
        '--grant-to',
        role,
        '--database-url',
        db.url,
      ])
      expect(again.code, again.stderr + again.stdout).toBe(0)
      expect((await placements()).get(back)).toBe('shared')
      await new Promise((res) => setTimeout(res, 1_000))
    } finally {
      await load.stop()
      await api.close()
    }
    const stats = load.stats()
    console.info('online load:', stats)
    expect(load.failures).toEqual([])
    expect(stats.acks).toBeGreaterThan(TENANTS * 5)
    expect(await missingAcks(load.acks)).toEqual([])
    // the capture triggers stay on every cut-over schema and refuse its writes; the change log
    // is empty, the ledger says done
    const { rows: triggers } = await db.pool.query(
      `select count(distinct n.nspname)::int as n from pg_trigger g join pg_class c on c.oid = g.tgrelid
         join pg_namespace n on n.oid = c.relnamespace where g.tgname = 'rowtenancy_capture_ins'`,
    )
    expect(triggers[0].n).toBe(TENANTS)
    const { rows: legacyTable } = await db.pool.query(
      `select c.oid::regclass::text as t from pg_trigger g join pg_class c on c.oid = g.tgrelid
        where g.tgname = 'rowtenancy_capture_upd' limit 1`,
    )
    await expect(
      db.pool.query(`update ${legacyTable[0].t} set id = id where false`),
    ).rejects.toMatchObject({ code: 'RTP01' })
    const { rows: log } = await db.pool.query('select count(*)::int as n from rowtenancy_changelog')
    expect(log[0].n).toBe(0)
    const { rows: ledger } = await db.pool.query(
      "select count(*)::int as n from rowtenancy_migration where state = 'done' and verify_ok",
    )
    expect(ledger[0].n).toBe(TENANTS)
    // verify: each legacy schema still holds what its cut-over verified
    const verify = await cli(['verify', '--database-url', db.url])
    expect(verify.code, verify.stderr + verify.stdout).toBe(0)
    // the offline rollback would delete rows the app wrote since the cut-over: refused
    const offline = await cli(['rollback', '--tenant-id', tenants[0]!, '--database-url', db.url])
    expect(offline.code).toBe(1)
    expect(offline.stderr).toMatch(/rollback --online/)
    // a schema the app no longer uses, unchanged since its cut-over, may go
    const drop = await cli([
      'drop-schemas',
      '--yes',
      '--tenant-id',
      tenants[1]!,
      '--database-url',
      db.url,
    ])
    expect(drop.code, drop.stderr + drop.stdout).toBe(0)
    expect(await missingAcks(load.acks)).toEqual([])
  }, 300_000)
})
