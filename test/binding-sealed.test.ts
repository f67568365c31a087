import { randomBytes } from 'node:crypto'
import { type Generated, Kysely, sql } from 'kysely'
import type pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runWithTenant } from '../src/context/index.js'
import { SessionGuard } from '../src/db/session-guard.js'
import { TenantBindingDialect } from '../src/db/tenant-dialect.js'
import { ConfigError } from '../src/errors/index.js'
import { withTenantClient } from '../src/pg/index.js'
import { enableRls, rlsStatus } from '../src/schema/rls-apply.js'
import { rlsSql } from '../src/schema/rls-render.js'
import { installSeal } from '../src/schema/rls-sealed.js'
import { createTenancy } from '../src/tenancy/index.js'
import { cli } from './helpers/cli.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'
import { type RlsFixture, setupRlsFixture } from './rls-fixture.js'

/**
 * Sealed binding: the policies honour a tenant only when rowtenancy's sealed bind
 * set it in the current transaction (an HMAC with a key the runtime role cannot
 * read); a value set any other way, by raw SQL inside a bound transaction or by a
 * plain query, is not honoured: no rows, and writes fail the policy.
 */
interface DB {
  accounts: { tenant_id: string; id: Generated<string>; name: string }
}

const KEY = randomBytes(32).toString('hex')
let db: TestDatabase
let fx: RlsFixture
let k: Kysely<DB>
let pool: pg.Pool

const names = (rows: { name: string }[]) => rows.map((r) => r.name).sort()
const rawNames = async (q: Parameters<ReturnType<typeof sql>['execute']>[0]) =>
  names((await sql<{ name: string }>`select name from accounts`.execute(q)).rows)

beforeAll(async () => {
  db = await createTestDatabase('binding_sealed')
  fx = await setupRlsFixture(db)
  await installSeal(db.pool, { key: KEY })
  await enableRls(db.pool, [{ name: 'accounts' }], { sealed: true })
  pool = fx.runtimePool(1)
  k = new Kysely<DB>({
    dialect: new TenantBindingDialect({
      pool,
      adminPool: db.pool,
      binding: 'sealed',
      sealKey: KEY,
    }),
  })
})
afterAll(async () => {
  await k?.destroy().catch(() => {})
  await fx.cleanup()
})

describe('sealed binding', () => {
  it('rls enable --sealed renders the sealed predicate; status reads it as ok only when sealed is expected', async () => {
    expect(rlsSql(['accounts'], { sealed: true }).at(-1)).toContain(
      `using ("tenant_id" = nullif((select public.rowtenancy_sealed_tenant()), '')::bigint)`,
    )
    expect((await rlsStatus(db.pool, [{ name: 'accounts' }], { sealed: true }))[0]!.policy).toBe(
      'ok',
    )
    expect((await rlsStatus(db.pool, [{ name: 'accounts' }]))[0]!.policy).toBe('different')
  })

  it('bound by rowtenancy: each tenant sees its rows, builder and raw SQL; pool of 1 reused', async () => {
    for (const t of [1, 2, 1]) {
      await runWithTenant(t, async () => {
        const want = t === 1 ? ['a1', 'a2'] : ['b1']
        expect(names(await k.selectFrom('accounts').select('name').execute())).toEqual(want)
        expect(await rawNames(k)).toEqual(want)
        expect(
          names(
            await k
              .transaction()
              .execute((trx) => trx.selectFrom('accounts').select('name').execute()),
          ),
        ).toEqual(want)
      })
    }
  })

  it('an injected statement cannot switch tenants inside its own transaction (set_config, SET LOCAL, a copied seal)', async () => {
    await runWithTenant(1, () =>
      k.transaction().execute(async (trx) => {
        expect(await rawNames(trx)).toEqual(['a1', 'a2'])
        await sql`select set_config('rowtenancy.tenant_id', '2', true)`.execute(trx)
        expect(await rawNames(trx)).toEqual([]) // not ['b1']
        await sql`set local rowtenancy.tenant_id = '2'`.execute(trx)
        expect(await rawNames(trx)).toEqual([])
        // the seal of tenant 1 is readable, but it seals tenant 1 only
        await sql`select set_config('rowtenancy.tenant_id', '2', true), current_setting('rowtenancy.seal')`.execute(
          trx,
        )
        expect(await rawNames(trx)).toEqual([])
      }),
    )
    // calling the bind function without the key: refused
    await expect(
      runWithTenant(1, () => sql`select public.rowtenancy_seal_bind('2', md5('x'))`.execute(k)),
    ).rejects.toThrow(/MAC does not match/)
    // writes to another tenant fail the policy even with the setting moved
    await expect(
      runWithTenant(1, () =>
        k.transaction().execute(async (trx) => {
          await sql`select set_config('rowtenancy.tenant_id', '2', true)`.execute(trx)
          await sql`insert into accounts (tenant_id, name) values (2, 'x')`.execute(trx)
        }),
      ),
    ).rejects.toThrow(/row-level security/)
  })

  it('a seal from an earlier transaction is not honoured (no replay); a plain query sees nothing', async () => {
    const captured = await runWithTenant(2, () =>
      k.transaction().execute(async (trx) => {
        const { rows } = await sql<{
          seal: string
        }>`select current_setting('rowtenancy.seal') as seal`.execute(trx)
        return rows[0]!.seal
      }),
    )
    expect(captured).toMatch(/^[0-9a-f]{64}$/)
    const c = await pool.connect()
    try {
      await c.query('begin')
      await c.query(
        `select set_config('rowtenancy.tenant_id', '2', true), set_config('rowtenancy.seal', $1, true)`,
        [captured],
      )
      expect((await c.query('select count(*)::int as n from accounts')).rows[0].n).toBe(0)
      await c.query('rollback')
      // session-level values, as a hostile plain query would leave them
      await c.query(
        `select set_config('rowtenancy.tenant_id', '2', false), set_config('rowtenancy.seal', $1, false)`,
        [captured],
      )
      expect((await c.query('select count(*)::int as n from accounts')).rows[0].n).toBe(0)
      await c.query(`reset rowtenancy.tenant_id; reset rowtenancy.seal`)
    } finally {
      c.release()
    }
  })

  it('a set_config binding on the same pooled connection is not honoured by sealed policies, and the two prepared binds coexist', async () => {
    const plain = new Kysely<DB>({
      dialect: new TenantBindingDialect({ pool, adminPool: db.pool }),
    })
    for (const t of [1, 2]) {
      await runWithTenant(t, async () => {
        expect(await plain.selectFrom('accounts').select('name').execute()).toEqual([])
        const want = t === 1 ? ['a1', 'a2'] : ['b1']
        expect(names(await k.selectFrom('accounts').select('name').execute())).toEqual(want)
      })
    }
    const { rows } = await pool.query(
      `select array(select name from pg_prepared_statements order by 1) as names`,
    )
    // Through a pooler (the PgBouncer target) both go unnamed.
    const pooled = SessionGuard.for(pool).pooled
    expect(rows[0].names).toEqual(pooled ? [] : ['rowtenancy_bind', 'rowtenancy_bind_sealed'])
  })

  it('CLI: rls enable --sealed without ROWTENANCY_SEAL_KEY is a clear error and changes nothing; with it, status --sealed is ok', async () => {
    const args = ['--tables', 'accounts', '--database-url', db.url]
    const saved = process.env.ROWTENANCY_SEAL_KEY
    try {
      delete process.env.ROWTENANCY_SEAL_KEY
      const missing = await cli(['rls', 'enable', '--sealed', ...args])
      expect(missing.code).not.toBe(0)
      expect(missing.stderr).toMatch(/ROWTENANCY_SEAL_KEY/)
      process.env.ROWTENANCY_SEAL_KEY = KEY
      const ok = await cli(['rls', 'enable', '--sealed', '--json', ...args])
      expect(ok.code).toBe(0)
      expect(JSON.parse(ok.stdout).unchanged).toEqual(['public.accounts'])
      const status = await cli(['rls', 'status', '--sealed', '--json', ...args])
      expect(JSON.parse(status.stdout)[0].policy).toBe('ok')
    } finally {
      if (saved === undefined) delete process.env.ROWTENANCY_SEAL_KEY
      else process.env.ROWTENANCY_SEAL_KEY = saved
    }
    // the same key was installed again: the app still binds
    const rows = await runWithTenant(1, () => k.selectFrom('accounts').select('name').execute())
    expect(names(rows)).toEqual(['a1', 'a2'])
  })

  it('the runtime role cannot read the key', async () => {
    await expect(pool.query('select key from rowtenancy_seal.key')).rejects.toThrow(
      /permission denied/,
    )
  })

  it('the policy checks the seal once per statement (an InitPlan), and the tenant is an index condition', async () => {
    const plan = await runWithTenant(1, () =>
      sql<{
        'QUERY PLAN': string
      }>`explain (costs off) select name from accounts where id = 1`.execute(k),
    )
    const text = plan.rows.map((r) => r['QUERY PLAN']).join('\n')
    expect(text).toMatch(/InitPlan/)
    expect(text).toMatch(/Index Cond: .*tenant_id = /)
  })

  it('withTenantClient with binding: sealed', async () => {
    const { rows } = await withTenantClient(pool, (c) => c.query('select name from accounts'), {
      tenantId: 2,
      binding: 'sealed',
      sealKey: KEY,
    })
    expect(names(rows)).toEqual(['b1'])
  })

  it('createTenancy({ binding: sealed }): a wrong or missing key fails at start-up, clearly', async () => {
    const wrong = createTenancy({
      pool: fx.runtimePool(1),
      adminPool: db.pool,
      tables: ['accounts'],
      binding: 'sealed',
      sealKey: 'x'.repeat(40),
      audit: { table: false },
    }).kysely<DB>()
    await expect(
      runWithTenant(1, () => wrong.selectFrom('accounts').selectAll().execute()),
    ).rejects.toThrow(/sealKey does not match/)
    expect(() => new TenantBindingDialect({ pool, binding: 'sealed' }).createDriver()).toThrow(
      ConfigError,
    )
    const right = createTenancy({
      pool: fx.runtimePool(1),
      adminPool: db.pool,
      tables: ['accounts'],
      binding: 'sealed',
      sealKey: KEY,
      audit: { table: false },
    }).kysely<DB>()
    const rows = await runWithTenant(2, () => right.selectFrom('accounts').select('name').execute())
    expect(names(rows)).toEqual(['b1'])
    await right.destroy()
  })
})
