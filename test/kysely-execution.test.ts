import { setTimeout as sleep } from 'node:timers/promises'
import {
  CamelCasePlugin,
  CompiledQuery,
  type Kysely,
  Kysely as KyselyClass,
  PostgresDialect,
  sql,
} from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  createTenancy,
  MissingTenantError,
  runWithTenant,
  UnsupportedQueryError,
  withoutTenant,
} from '../src/entries/index.js'
import { TenantPlugin } from '../src/entries/kysely.js'
import { notOnCitus, RAW_FANS_OUT } from './helpers/citus.js'
import type { TestDatabase } from './helpers/db.js'
import {
  type createRuntimeRole,
  type FinanceDB,
  financeTenancy,
  seedFinance,
  TABLES,
} from './kysely-fixture.js'

let fixture: Awaited<ReturnType<typeof financeTenancy>>
let tdb: TestDatabase
let role: Awaited<ReturnType<typeof createRuntimeRole>> | undefined
let db: Kysely<FinanceDB>

beforeAll(async () => {
  fixture = await financeTenancy('kysely_exec')
  ;({ tdb, role, db } = fixture)
})

afterAll(() => fixture?.close())

describe('the tenant is read when the query executes', () => {
  it('a builder made with no tenant runs for the tenant current at execution', async () => {
    const query = db.selectFrom('accounts').select('name').orderBy('name')
    expect(await runWithTenant('1', () => query.execute())).toEqual([
      { name: 'alice-1' },
      { name: 'bob-1' },
    ])
    expect(await runWithTenant('2', () => query.execute())).toEqual([
      { name: 'alice-2' },
      { name: 'carol-2' },
    ])
  })

  it('pitfall: lost async context: one builder, many tenants at once, each gets its own rows', async () => {
    const query = db.selectFrom('accounts').select('name').orderBy('name')
    const results = await Promise.all(
      ['1', '2', '1', '2', '1', '2'].map((tenant, i) =>
        runWithTenant(tenant, async () => {
          await sleep(6 - i)
          const rows = await query.execute()
          return { tenant, names: rows.map((r) => r.name) }
        }),
      ),
    )
    for (const { tenant, names } of results) {
      expect(names.every((n) => n.endsWith(`-${tenant}`))).toBe(true)
    }
  })

  it('pitfall: a query compiled for tenant 1 and executed for tenant 2 is refused, nothing leaks', async () => {
    const compiled = runWithTenant('1', () => db.selectFrom('accounts').selectAll().compile())
    expect(compiled.parameters).toEqual(['1'])
    await expect(runWithTenant('2', () => db.executeQuery(compiled))).rejects.toThrow(
      UnsupportedQueryError,
    )
    await expect(runWithTenant('2', () => db.executeQuery(compiled))).rejects.toThrow(
      /compiled for tenant "1" but is executed for tenant "2"/,
    )
    await expect(db.executeQuery(compiled)).rejects.toThrow(MissingTenantError)
    const same = await runWithTenant(1, () => db.executeQuery(compiled))
    expect(same.rows).toHaveLength(2)
  })

  it('pitfall: a compiled write for tenant 1 executed for tenant 2 is refused before it runs', async () => {
    const compiled = runWithTenant('1', () =>
      db.insertInto('accounts').values({ id: '90', name: 'compiled' }).compile(),
    )
    await expect(runWithTenant('2', () => db.executeQuery(compiled))).rejects.toThrow(
      UnsupportedQueryError,
    )
    const { rows } = await tdb.pool.query('select count(*)::int as n from accounts where id = 90')
    expect(rows[0].n).toBe(0)
  })

  it('pitfall: a query compiled inside withoutTenant (unfiltered) cannot run outside it', async () => {
    const compiled = withoutTenant('test', () => db.selectFrom('accounts').selectAll().compile())
    expect(compiled.sql).toBe('select * from "accounts"')
    await expect(runWithTenant('1', () => db.executeQuery(compiled))).rejects.toThrow(
      /compiled inside withoutTenant\("test"\)/,
    )
    const all = await withoutTenant('test', () => db.executeQuery(compiled))
    expect(all.rows).toHaveLength(4)
  })

  it('pitfall: a query compiled by an unscoped Kysely cannot be executed through the scoped one', async () => {
    const plain = new KyselyClass<FinanceDB>({ dialect: new PostgresDialect({ pool: tdb.pool }) })
    const compiled = plain.selectFrom('accounts').selectAll().compile()
    await expect(runWithTenant('1', () => db.executeQuery(compiled))).rejects.toThrow(
      /not scoped by this tenancy's TenantPlugin/,
    )
  })

  it('pitfall: withoutPlugins() / withPlugin() after TenantPlugin cannot bypass the scoping', async () => {
    await expect(
      runWithTenant('1', () => db.withoutPlugins().selectFrom('accounts').selectAll().execute()),
    ).rejects.toThrow(UnsupportedQueryError)
    await expect(
      runWithTenant('1', () =>
        db.withPlugin(new CamelCasePlugin()).selectFrom('accounts').selectAll().execute(),
      ),
    ).rejects.toThrow(UnsupportedQueryError)
  })

  notOnCitus(RAW_FANS_OUT)(
    'a raw CompiledQuery needs a tenant; its rows are left to RLS',
    async () => {
      const raw = CompiledQuery.raw('select count(*)::int as n from accounts')
      await expect(db.executeQuery(raw)).rejects.toThrow(MissingTenantError)
      const result = await runWithTenant('1', () => db.executeQuery<{ n: number }>(raw))
      expect(result.rows[0]?.n).toBe(4)
    },
  )
})

describe('transactions, streams, pooled connections', () => {
  it('queries inside db.transaction() are scoped; begin/commit pass through', async () => {
    const names = await runWithTenant('2', () =>
      db.transaction().execute(async (trx) => {
        await trx.updateTable('accounts').set({ name: 'carol-2b' }).where('id', '=', '3').execute()
        const rows = await trx.selectFrom('accounts').select('name').orderBy('name').execute()
        return rows.map((r) => r.name)
      }),
    )
    expect(names).toEqual(['alice-2', 'carol-2b'])
    await seedFinance(tdb.pool)
  })

  it('a rolled-back transaction leaves nothing behind', async () => {
    await expect(
      runWithTenant('1', () =>
        db.transaction().execute(async (trx) => {
          await trx.deleteFrom('transactions').execute()
          throw new Error('boom')
        }),
      ),
    ).rejects.toThrow('boom')
    const { rows } = await tdb.pool.query('select count(*)::int as n from transactions')
    expect(rows[0].n).toBe(5)
  })

  it('pitfall: pooled connection reuse: a connection used for tenant 1 serves tenant 2 correctly', async () => {
    // max 4 connections, 20 alternating queries: connections are reused across tenants.
    const runs = Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? '1' : '2'))
    const out = await Promise.all(
      runs.map((tenant) =>
        runWithTenant(tenant, async () => {
          const rows = await db.selectFrom('transactions').select('tenant_id').execute()
          return rows.every((r) => String(r.tenant_id) === tenant)
        }),
      ),
    )
    expect(out.every(Boolean)).toBe(true)
  })

  it('.stream() is checked like execute(): no tenant, no statement', async () => {
    const iterate = async () => {
      for await (const _row of db.selectFrom('transactions').selectAll().stream(1)) {
        // never reached
      }
    }
    await expect(iterate()).rejects.toThrow(MissingTenantError)
  })
})

describe('column naming: CamelCasePlugin', () => {
  interface CamelDB {
    accounts: { tenantId: string; id: string; name: string; currency: string | null }
    transactions: { tenantId: string; id: string; accountId: string; amount: string }
  }

  it('runs before the TenantPlugin, which sees snake_case database names', async () => {
    const camel = createTenancy({
      pool: new pg.Pool({ connectionString: role!.url, max: 2 }),
      tables: TABLES,
      plugins: [new CamelCasePlugin()],
      audit: { table: false },
    })
    try {
      const cdb = camel.kysely<CamelDB>()
      const query = cdb
        .selectFrom('transactions as t')
        .innerJoin('accounts as a', 'a.id', 't.accountId')
        .select(['t.accountId', 'a.tenantId'])
        .orderBy('t.id')
      const compiled = runWithTenant('2', () => query.compile())
      expect(compiled.sql).toBe(
        'select "t"."account_id", "a"."tenant_id" from "transactions" as "t" ' +
          'inner join "accounts" as "a" on "a"."id" = "t"."account_id" and "a"."tenant_id" = $1 ' +
          'where "t"."tenant_id" = $2 order by "t"."id"',
      )
      expect(await runWithTenant('2', () => query.execute())).toEqual([
        { accountId: '1', tenantId: '2' },
        { accountId: '3', tenantId: '2' },
      ])
    } finally {
      await camel.destroy()
    }
  })

  it('TenantPlugin used on its own, last in the plugin list, with camelCase keys on insert', async () => {
    const own = new KyselyClass<CamelDB>({
      dialect: new PostgresDialect({ pool: tdb.pool }),
      plugins: [new CamelCasePlugin(), new TenantPlugin({ tables: ['accounts', 'transactions'] })],
    })
    const compiled = runWithTenant('1', () =>
      own.insertInto('accounts').values({ tenantId: '1', id: '70', name: 'camel' }).compile(),
    )
    expect(compiled.sql).toBe(
      'insert into "accounts" ("tenant_id", "id", "name") values ($1, $2, $3)',
    )
    const rows = await runWithTenant('1', () =>
      sql<{ n: number }>`select 1 as n`.execute(own).then((r) => r.rows),
    )
    expect(rows).toEqual([{ n: 1 }])
  })
})
