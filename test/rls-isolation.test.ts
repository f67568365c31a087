import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { disableRls, enableRls, rlsStatus } from '../src/schema/rls-apply.js'
import { tenantPolicy } from '../src/schema/rls-policy.js'
import { renderRlsEnable, rlsSql } from '../src/schema/rls-render.js'
import { runtimeRoleGrantsSql } from '../src/schema/roles.js'
import { notOnCitus, RAW_FANS_OUT } from './helpers/citus.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'
import { type RlsFixture, setupRlsFixture } from './rls-fixture.js'

describe('RLS DDL as data, rendered late', () => {
  it('renders ENABLE + FORCE + one policy for USING and WITH CHECK, one statement each, no sub-select', () => {
    expect(rlsSql(['accounts', 'app.transactions'], { tenantIdType: 'uuid' })).toEqual([
      'alter table "accounts" enable row level security',
      'alter table "accounts" force row level security',
      'drop policy if exists "rowtenancy_tenant_isolation" on "accounts"',
      `create policy "rowtenancy_tenant_isolation" on "accounts" as permissive for all to public using ("tenant_id" = nullif(current_setting('rowtenancy.tenant_id', true), '')::uuid) with check ("tenant_id" = nullif(current_setting('rowtenancy.tenant_id', true), '')::uuid)`,
      'alter table "app"."transactions" enable row level security',
      'alter table "app"."transactions" force row level security',
      'drop policy if exists "rowtenancy_tenant_isolation" on "app"."transactions"',
      `create policy "rowtenancy_tenant_isolation" on "app"."transactions" as permissive for all to public using ("tenant_id" = nullif(current_setting('rowtenancy.tenant_id', true), '')::uuid) with check ("tenant_id" = nullif(current_setting('rowtenancy.tenant_id', true), '')::uuid)`,
    ])
    // Citus rejects a policy with a sub-select ("unexpected non-SELECT command in SubLink").
    for (const s of rlsSql(['accounts'])) expect(s).not.toMatch(/\(\s*select/i)
  })

  it('quotes hostile table and column names through the one helper', () => {
    const [, , , create] = renderRlsEnable(
      tenantPolicy({ name: 'a"; drop table x; --' }, { tenantColumn: 'org"id' }),
    )
    expect(create).toContain('on "a""; drop table x; --"')
    expect(create).toContain('using ("org""id" = ')
  })

  it('runtime grants: DML and sequences only, never ownership or DDL; the tenant directory read-only', () => {
    const sql = runtimeRoleGrantsSql({ role: 'app_runtime' })
    expect(sql.slice(0, 5)).toEqual([
      'grant usage on schema "public" to "app_runtime"',
      'grant select, insert, update, delete on all tables in schema "public" to "app_runtime"',
      'grant usage, select on all sequences in schema "public" to "app_runtime"',
      'alter default privileges in schema "public" grant select, insert, update, delete on tables to "app_runtime"',
      'alter default privileges in schema "public" grant usage, select on sequences to "app_runtime"',
    ])
    expect(sql).toHaveLength(6)
    for (const table of ['tenants', 'tenant_domains', 'tenant_placements'])
      expect(sql[5]).toContain(`to_regclass('"public"."${table}"')`)
    expect(sql[5]).toMatch(
      /^do \$rowtenancy\$ begin .*revoke insert, update, delete, truncate on %s from %I/,
    )
  })
})

describe('RLS on a live database, through a runtime role', () => {
  let db: TestDatabase
  let fx: RlsFixture

  beforeAll(async () => {
    db = await createTestDatabase('rls')
    fx = await setupRlsFixture(db)
  })
  afterAll(async () => {
    await fx.cleanup()
  })

  notOnCitus(RAW_FANS_OUT)('raw SQL with no tenant bound sees no rows (fail closed)', async () => {
    const pool = fx.runtimePool()
    const { rows } = await pool.query('select * from accounts')
    expect(rows).toEqual([])
  })

  notOnCitus(RAW_FANS_OUT)('raw SQL with a bound tenant sees only that tenant', async () => {
    const client = await fx.runtimePool().connect()
    try {
      await client.query('begin')
      await client.query(`select set_config('rowtenancy.tenant_id', $1, true)`, ['1'])
      const { rows } = await client.query('select tenant_id, name from accounts order by name')
      expect(rows).toEqual([
        { tenant_id: '1', name: 'a1' },
        { tenant_id: '1', name: 'a2' },
      ])
      await client.query('commit')
    } finally {
      client.release()
    }
  })

  notOnCitus(
    'set_config does not reach the workers, and Citus refuses an UPDATE of the distribution column before RLS; citus-binding.test.ts covers both on the cluster',
  )(
    "an INSERT of another tenant's row fails WITH CHECK; UPDATE cannot move a row out",
    async () => {
      const client = await fx.runtimePool().connect()
      try {
        await client.query('begin')
        await client.query(`select set_config('rowtenancy.tenant_id', $1, true)`, ['1'])
        await expect(
          client.query(`insert into accounts (tenant_id, name) values (2, 'sneaky')`),
        ).rejects.toMatchObject({ code: '42501' })
        await client.query('rollback')
        await client.query('begin')
        await client.query(`select set_config('rowtenancy.tenant_id', $1, true)`, ['1'])
        await expect(client.query(`update accounts set tenant_id = 2`)).rejects.toMatchObject({
          code: '42501',
        })
        await client.query('rollback')
      } finally {
        client.release()
      }
      const { rows } = await db.pool.query(
        `select count(*)::int as n from accounts where tenant_id = 2`,
      )
      expect(rows[0].n).toBe(1)
    },
  )

  it('the runtime role cannot switch RLS off (it owns nothing)', async () => {
    await expect(
      fx.runtimePool().query('alter table accounts disable row level security'),
    ).rejects.toMatchObject({ code: '42501' })
  })

  it('enable is idempotent; status reports; disable and re-enable round-trip', async () => {
    const again = await enableRls(db.pool, [{ name: 'accounts' }])
    expect(again.changed).toEqual([])
    expect(again.unchanged).toEqual(['public.accounts'])
    expect(await rlsStatus(db.pool, [{ name: 'accounts' }])).toEqual([
      { table: 'public.accounts', exists: true, enabled: true, forced: true, policy: 'ok' },
    ])
    const off = await disableRls(db.pool, [{ name: 'accounts' }])
    expect(off.changed).toEqual(['public.accounts'])
    expect(await rlsStatus(db.pool, [{ name: 'accounts' }])).toEqual([
      { table: 'public.accounts', exists: true, enabled: false, forced: false, policy: 'missing' },
    ])
    expect((await disableRls(db.pool, [{ name: 'accounts' }])).changed).toEqual([])
    const on = await enableRls(db.pool, [{ name: 'accounts' }])
    expect(on.changed).toEqual(['public.accounts'])
  })

  it('a missing table is an error that changes nothing', async () => {
    await expect(enableRls(db.pool, [{ name: 'accounts' }, { name: 'nope' }])).rejects.toThrow(
      /No such table: nope/,
    )
  })
})
