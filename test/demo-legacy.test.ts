import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { generateLegacy, planLegacyTenants } from '../examples/finance/legacy/generate.js'
import { InvalidInputError } from '../src/errors/index.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'

/** A fingerprint of every legacy row, per tenant schema. */
async function fingerprint(db: TestDatabase): Promise<Record<string, string>> {
  const { rows } = await db.pool.query('select schema_name from customers_client order by id')
  const out: Record<string, string> = {}
  for (const { schema_name: s } of rows) {
    const r = await db.pool.query(
      `select md5(string_agg(t::text, '|' order by t.id)) as x from "${s}".finance_transaction t`,
    )
    const a = await db.pool.query(
      `select md5(string_agg(t::text, '|' order by t.id)) as x from "${s}".finance_account t`,
    )
    out[s] = `${r.rows[0].x}/${a.rows[0].x}`
  }
  return out
}

describe('the legacy generator (django-tenants layout)', () => {
  let one: TestDatabase
  let two: TestDatabase
  beforeAll(async () => {
    ;[one, two] = await Promise.all([
      createTestDatabase('legacy_a'),
      createTestDatabase('legacy_b'),
    ])
  })
  afterAll(async () => {
    await Promise.all([one?.drop(), two?.drop()])
  })

  it('builds customers_client, customers_domain and one schema per tenant with the planned rows', async () => {
    const summary = await generateLegacy(one.pool, { tenants: 6, seed: 3, scale: 0.05 })
    const clients = await one.pool.query(
      'select id::int, schema_name, slug from customers_client order by id',
    )
    expect(clients.rows.map((r) => r.schema_name)).toEqual(summary.tenants.map((t) => t.schema))
    const domains = await one.pool.query(
      'select count(*)::int as n, count(*) filter (where is_primary)::int as p from customers_domain',
    )
    expect(domains.rows[0].p).toBe(6)
    for (const t of summary.tenants) {
      const { rows } = await one.pool.query(
        `select (select count(*) from "${t.schema}".auth_user)::int as users,
                (select count(*) from "${t.schema}".auth_membership)::int as members,
                (select count(*) from "${t.schema}".finance_account)::int as accounts,
                (select count(*) from "${t.schema}".finance_transaction)::int as transactions`,
      )
      expect(rows[0]).toEqual({
        users: t.users,
        members: t.users,
        accounts: t.accounts,
        transactions: t.transactions,
      })
    }
  })

  it('is deterministic: the same seed gives the same rows (server-side hashing, not random())', async () => {
    await generateLegacy(two.pool, { tenants: 6, seed: 3, scale: 0.05, concurrency: 1 })
    expect(await fingerprint(two)).toEqual(await fingerprint(one))
  })

  it('refuses to touch an existing legacy layout, and replaces it only when asked', async () => {
    await expect(generateLegacy(one.pool, { tenants: 2 })).rejects.toBeInstanceOf(InvalidInputError)
    expect(
      (await one.pool.query('select count(*)::int as n from customers_client')).rows[0].n,
    ).toBe(6)
    await generateLegacy(one.pool, { tenants: 2, seed: 9, scale: 0.05, replace: true })
    expect(
      (await one.pool.query('select count(*)::int as n from customers_client')).rows[0].n,
    ).toBe(2)
    const left = await one.pool.query(
      "select count(*)::int as n from pg_namespace where nspname like 'tenant\\_%'",
    )
    expect(left.rows[0].n).toBe(2)
  })

  it('rejects bad sizes before writing anything', async () => {
    await expect(generateLegacy(two.pool, { tenants: 0, replace: true })).rejects.toThrow(
      /tenants must be a whole number/,
    )
    await expect(generateLegacy(two.pool, { scale: -1, replace: true })).rejects.toThrow(/scale/)
    expect(
      (await two.pool.query('select count(*)::int as n from customers_client')).rows[0].n,
    ).toBe(6)
  })

  it('plans uneven sizes: a few large tenants, many small ones', () => {
    const plan = planLegacyTenants({ tenants: 40, seed: 1, scale: 1 })
    const sizes = plan.map((t) => t.transactions).sort((a, b) => a - b)
    const median = sizes[20]!
    expect(sizes.at(-1)!).toBeGreaterThan(10 * median)
    expect(new Set(plan.map((t) => t.slug)).size).toBe(40)
    expect(plan[0]).toMatchObject({ slug: 'acme', schema: 'tenant_acme' })
  })
})
