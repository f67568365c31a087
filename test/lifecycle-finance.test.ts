import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { setupFinanceDemo } from '../examples/finance/setup.js'
import {
  eraseTenant,
  exportTenant,
  importTenant,
  tenantChecksums,
  tenantTables,
} from '../src/lifecycle/index.js'
import { quoteIdent } from '../src/sql/quote.js'
import { serverUrl, urlFor } from './helpers/db.js'

const layout = {
  schema: 'public',
  tenantsSchema: 'public',
  tenantColumn: 'tenant_id',
  idType: 'bigint',
} as const
const name = `rt_life_fin_${randomBytes(4).toString('hex')}`
const empty = `${name}_empty`
const role = `${name}_app`
let dir: string
let a: pg.Pool
let b: pg.Pool

async function admin(sql: string) {
  const c = new pg.Client({ connectionString: serverUrl() })
  await c.connect()
  try {
    await c.query(sql)
  } finally {
    await c.end()
  }
}

async function sums(pool: pg.Pool, id: string) {
  const c = await pool.connect()
  try {
    await c.query('begin')
    return await tenantChecksums(c, layout, id, (await tenantTables(c, layout)).tables)
  } finally {
    await c.query('rollback')
    c.release()
  }
}

async function byTenant(pool: pg.Pool): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  for (const t of ['auth_user', 'auth_membership', 'finance_account', 'finance_transaction']) {
    const { rows } = await pool.query(
      `select tenant_id::text as id, count(*)::text || ':' || sum(hashtextextended(x::text, 0))::text as f from ${quoteIdent(t)} x group by 1`,
    )
    for (const r of rows) out[`${t}@${r.id}`] = r.f
  }
  return out
}

beforeAll(async () => {
  await admin(`create database "${name}"`)
  await setupFinanceDemo({
    ownerUrl: urlFor(name),
    tenants: 3,
    scale: 0.2,
    runtimeRole: role,
    log: () => {},
  })
  // An empty database with the same schema: a copy, every tenant erased.
  await admin(`create database "${empty}" template "${name}"`)
  a = new pg.Pool({ connectionString: urlFor(name), max: 3 })
  b = new pg.Pool({ connectionString: urlFor(empty), max: 3 })
  for (const { id } of (await b.query('select id::text from tenants')).rows) {
    await eraseTenant({ db: b, tenantId: id })
  }
  dir = await mkdtemp(join(tmpdir(), 'rt-life-fin-'))
}, 240_000)
afterAll(async () => {
  await a?.end()
  await b?.end()
  await admin(`drop database if exists "${name}" with (force)`)
  await admin(`drop database if exists "${empty}" with (force)`)
  await admin(`drop role if exists "${role}"`)
  if (dir) await rm(dir, { recursive: true, force: true })
})

describe('tenant lifecycle on the finance example', () => {
  it('export -> import into an empty database: identical checksums; under another id next to the original; erase leaves the others unchanged', async () => {
    const [first] = (await a.query('select id::text from tenants order by id limit 1')).rows
    const id = first.id as string
    expect((await b.query('select count(*)::int as n from tenants')).rows[0].n).toBe(0)
    const file = join(dir, 'finance.rtar')
    const { manifest } = await exportTenant({ db: a, tenantId: id, out: file })
    expect(manifest.tables.map((t) => t.name)).toEqual(
      expect.arrayContaining([
        'auth_user',
        'auth_membership',
        'finance_account',
        'finance_transaction',
      ]),
    )
    expect(manifest.tables.find((t) => t.name === 'finance_transaction')!.rows).toBeGreaterThan(0)
    await importTenant({ db: b, in: file })
    const original = await sums(a, id)
    expect(await sums(b, id)).toEqual(original)
    const before = await byTenant(a)
    await importTenant({ db: a, in: file, asTenantId: '9001' })
    expect(await sums(a, '9001')).toEqual(original)
    await eraseTenant({ db: a, tenantId: '9001' })
    expect(await byTenant(a)).toEqual(before)
  })
})
