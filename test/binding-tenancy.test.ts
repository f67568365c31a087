import { type Generated, sql } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  createTenancy,
  runWithTenant,
  type Tenancy,
  UnsafeRoleError,
  withoutTenant,
} from '../src/entries/index.js'
import { notOnCitus, RAW_FANS_OUT } from './helpers/citus.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'
import { type RlsFixture, setupRlsFixture } from './rls-fixture.js'

interface DB {
  accounts: { tenant_id: Generated<string>; id: Generated<string>; name: string }
}

let db: TestDatabase
let fx: RlsFixture
let tenancy: Tenancy

beforeAll(async () => {
  db = await createTestDatabase('binding_tenancy')
  fx = await setupRlsFixture(db)
  tenancy = createTenancy({
    pool: fx.runtimePool(2),
    adminPool: new pg.Pool({ connectionString: db.url, max: 2 }),
    tables: ['accounts'],
    audit: { table: false },
  })
})
afterAll(async () => {
  await tenancy.destroy()
  await fx.cleanup()
})

const names = (rows: { name: string }[]) => rows.map((r) => r.name).sort()

describe('createTenancy on the binding dialect', () => {
  notOnCitus(RAW_FANS_OUT)(
    'plugin and RLS agree: scoped Kysely and raw SQL through tenancy.kysely() see one tenant',
    async () => {
      const k = tenancy.kysely<DB>()
      expect(
        names(await runWithTenant(1, () => k.selectFrom('accounts').select('name').execute())),
      ).toEqual(['a1', 'a2'])
      // raw SQL is not rewritten by the plugin: RLS alone scopes it
      const raw = await runWithTenant(2, () =>
        sql<{ name: string }>`select name from accounts`.execute(k),
      )
      expect(names(raw.rows)).toEqual(['b1'])
    },
  )

  it('withoutTenant goes to the admin pool and sees every tenant', async () => {
    const k = tenancy.kysely<DB>()
    const all = await withoutTenant('test: report', () =>
      k.selectFrom('accounts').select('name').execute(),
    )
    expect(names(all)).toEqual(['a1', 'a2', 'b1'])
  })

  it('tenancy.transaction(fn): bound once, nested calls are savepoints', async () => {
    await runWithTenant(1, () =>
      tenancy.transaction<DB, void>(async (trx) => {
        await trx.insertInto('accounts').values({ name: 't-outer' }).execute()
        await tenancy
          .transaction<DB, void>(async (inner) => {
            await inner.insertInto('accounts').values({ name: 't-inner' }).execute()
            throw new Error('inner')
          })
          .catch(() => {})
      }),
    )
    const { rows } = await db.pool.query(
      `select tenant_id, name from accounts where name like 't-%'`,
    )
    expect(rows).toEqual([{ tenant_id: '1', name: 't-outer' }])
    await db.pool.query(`delete from accounts where name like 't-%'`)
  })

  it('rlsSql() returns the DDL of the registered tables, one statement each', () => {
    expect(tenancy.rlsSql()).toEqual([
      'alter table "accounts" enable row level security',
      'alter table "accounts" force row level security',
      'drop policy if exists "rowtenancy_tenant_isolation" on "accounts"',
      `create policy "rowtenancy_tenant_isolation" on "accounts" as permissive for all to public using ("tenant_id" = nullif(current_setting('rowtenancy.tenant_id', true), '')::bigint) with check ("tenant_id" = nullif(current_setting('rowtenancy.tenant_id', true), '')::bigint)`,
    ])
  })

  it('a superuser runtime pool is refused at start-up unless allowUnsafeRole', async () => {
    const unsafe = createTenancy({
      pool: new pg.Pool({ connectionString: db.url, max: 1 }),
      tables: ['accounts'],
      audit: { table: false },
    })
    try {
      await expect(
        runWithTenant(1, () => unsafe.kysely<DB>().selectFrom('accounts').selectAll().execute()),
      ).rejects.toThrow(UnsafeRoleError)
    } finally {
      await unsafe.destroy()
    }
    expect(() =>
      createTenancy({ pool: fx.runtimePool(1), tables: ['accounts'], binding: 'session' as never }),
    ).toThrow(/Unknown binding "session"/)
  })
})
