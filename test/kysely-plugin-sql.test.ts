import { type Compilable, type Kysely, sql } from 'kysely'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import {
  CrossTenantWriteError,
  MissingTenantError,
  runWithTenant,
  UnsupportedQueryError,
} from '../src/entries/index.js'
import type { TestDatabase } from './helpers/db.js'
import { allRows, type FinanceDB, financeTenancy, seedFinance } from './kysely-fixture.js'

let fixture: Awaited<ReturnType<typeof financeTenancy>>
let tdb: TestDatabase
let db: Kysely<FinanceDB>

beforeAll(async () => {
  fixture = await financeTenancy('kysely_sql')
  ;({ tdb, db } = fixture)
})

afterAll(() => fixture?.close())

/** Compiles under tenant 1 and asserts the exact SQL and parameters. */
function expectSql(query: Compilable, expected: { sql: string; parameters: unknown[] }): void {
  const compiled = runWithTenant('1', () => query.compile())
  expect(compiled.sql).toBe(expected.sql)
  expect(compiled.parameters).toEqual(expected.parameters)
}

/** Executes under tenant 1. */
function asTenant1<T>(fn: () => Promise<T>): Promise<T> {
  return runWithTenant('1', fn)
}

describe('TenantPlugin: reads', () => {
  it('filters a plain FROM on the table name', async () => {
    const query = db.selectFrom('accounts').selectAll().orderBy('id')
    expectSql(query, {
      sql: 'select * from "accounts" where "accounts"."tenant_id" = $1 order by "id"',
      parameters: ['1'],
    })
    const rows = await asTenant1(() => query.execute())
    expect(rows.map((r) => r.name)).toEqual(['alice-1', 'bob-1'])
  })

  it('pitfall: an alias is filtered through the alias, not the table name', async () => {
    const query = db.selectFrom('accounts as a').select(['a.name']).where('a.id', '=', '1')
    expectSql(query, {
      sql: 'select "a"."name" from "accounts" as "a" where "a"."id" = $1 and "a"."tenant_id" = $2',
      parameters: ['1', '1'],
    })
    expect(await asTenant1(() => query.execute())).toEqual([{ name: 'alice-1' }])
  })

  it('pitfall: an OR in the user filter cannot swallow the tenant filter', async () => {
    const query = db
      .selectFrom('accounts')
      .select('name')
      .where((eb) => eb.or([eb('id', '=', '1'), eb('id', '=', '3')]))
      .orderBy('name')
    expectSql(query, {
      sql: 'select "name" from "accounts" where ("id" = $1 or "id" = $2) and "accounts"."tenant_id" = $3 order by "name"',
      parameters: ['1', '3', '1'],
    })
    expect(await asTenant1(() => query.execute())).toEqual([{ name: 'alice-1' }])
  })

  it('pitfall: a raw OR in WHERE is parenthesised before the tenant filter', async () => {
    const query = db
      .selectFrom('accounts')
      .select('name')
      .where(sql<boolean>`name = 'carol-2' or true`)
      .orderBy('name')
    expectSql(query, {
      sql: `select "name" from "accounts" where (name = 'carol-2' or true) and "accounts"."tenant_id" = $1 order by "name"`,
      parameters: ['1'],
    })
    expect(await asTenant1(() => query.execute())).toEqual([{ name: 'alice-1' }, { name: 'bob-1' }])
  })

  it('pitfall: INNER JOIN puts the filter in ON for the joined table', async () => {
    const query = db
      .selectFrom('transactions as t')
      .innerJoin('accounts as a', 'a.id', 't.account_id')
      .select(['t.id', 'a.name', 't.amount'])
      .orderBy('t.id')
    expectSql(query, {
      sql:
        'select "t"."id", "a"."name", "t"."amount" from "transactions" as "t" ' +
        'inner join "accounts" as "a" on "a"."id" = "t"."account_id" and "a"."tenant_id" = $1 ' +
        'where "t"."tenant_id" = $2 order by "t"."id"',
      parameters: ['1', '1'],
    })
    expect(await asTenant1(() => query.execute())).toEqual([
      { id: '1', name: 'alice-1', amount: '10' },
      { id: '2', name: 'alice-1', amount: '20' },
      { id: '3', name: 'bob-1', amount: '5' },
    ])
  })

  it('pitfall: LEFT JOIN stays a LEFT JOIN (filter in ON, not WHERE)', async () => {
    const query = db
      .selectFrom('accounts as a')
      .leftJoin('transactions as t', 't.account_id', 'a.id')
      .select(['a.name', 't.amount'])
      .where('a.id', '=', '2')
    expectSql(query, {
      sql:
        'select "a"."name", "t"."amount" from "accounts" as "a" ' +
        'left join "transactions" as "t" on "t"."account_id" = "a"."id" and "t"."tenant_id" = $1 ' +
        'where "a"."id" = $2 and "a"."tenant_id" = $3',
      parameters: ['1', '2', '1'],
    })
    expect(await asTenant1(() => query.execute())).toEqual([{ name: 'bob-1', amount: '5' }])
    // Tenant 2's account 3 has a transaction, tenant 1 has no account 3: the left join keeps it null.
    const none = await asTenant1(() =>
      db
        .selectFrom('accounts as a')
        .leftJoin('transactions as t', (j) =>
          j.onRef('t.account_id', '=', 'a.id').on('t.id', '=', '2'),
        )
        .select(['a.name', 't.amount'])
        .where('a.id', '=', '2')
        .execute(),
    )
    expect(none).toEqual([{ name: 'bob-1', amount: null }])
  })

  it('pitfall: RIGHT JOIN restricts each table before joining (no other-tenant rows preserved)', async () => {
    const query = db
      .selectFrom('accounts as a')
      .rightJoin('transactions as t', 't.account_id', 'a.id')
      .select(['a.name', 't.amount'])
      .orderBy('t.amount')
    expectSql(query, {
      sql:
        'select "a"."name", "t"."amount" from (select * from "accounts" where "accounts"."tenant_id" = $1) as "a" ' +
        'right join (select * from "transactions" where "transactions"."tenant_id" = $2) as "t" ' +
        'on "t"."account_id" = "a"."id" order by "t"."amount"',
      parameters: ['1', '1'],
    })
    expect(await asTenant1(() => query.execute())).toEqual([
      { name: 'bob-1', amount: '5' },
      { name: 'alice-1', amount: '10' },
      { name: 'alice-1', amount: '20' },
    ])
  })

  it('pitfall: FULL JOIN with a shared table keeps no other-tenant rows', async () => {
    const query = db
      .selectFrom('accounts')
      .fullJoin('currencies', 'currencies.code', 'accounts.currency')
      .select(['accounts.name', 'currencies.code'])
      .orderBy('currencies.code')
    expectSql(query, {
      sql:
        'select "accounts"."name", "currencies"."code" from ' +
        '(select * from "accounts" where "accounts"."tenant_id" = $1) as "accounts" ' +
        'full join "currencies" on "currencies"."code" = "accounts"."currency" order by "currencies"."code"',
      parameters: ['1'],
    })
    expect(await asTenant1(() => query.execute())).toEqual([
      { name: 'alice-1', code: 'EUR' },
      { name: 'bob-1', code: 'USD' },
    ])
  })

  it('pitfall: CROSS JOIN filters both tables in WHERE', async () => {
    const query = db
      .selectFrom('accounts')
      .crossJoin('transactions')
      .select((eb) => eb.fn.countAll<string>().as('n'))
    expectSql(query, {
      sql:
        'select count(*) as "n" from "accounts" cross join "transactions" ' +
        'where "accounts"."tenant_id" = $1 and "transactions"."tenant_id" = $2',
      parameters: ['1', '1'],
    })
    expect(await asTenant1(() => query.executeTakeFirstOrThrow())).toEqual({ n: '6' })
  })

  it('pitfall: subqueries in SELECT and WHERE get their own filter', async () => {
    const query = db
      .selectFrom('accounts')
      .select((eb) => [
        'name',
        eb
          .selectFrom('transactions')
          .select((e) => e.fn.countAll<string>().as('c'))
          .whereRef('transactions.account_id', '=', 'accounts.id')
          .as('n'),
      ])
      .where('id', 'in', (eb) => eb.selectFrom('transactions').select('account_id'))
      .orderBy('name')
    expectSql(query, {
      sql:
        'select "name", (select count(*) as "c" from "transactions" where "transactions"."account_id" = "accounts"."id" ' +
        'and "transactions"."tenant_id" = $1) as "n" from "accounts" where "id" in ' +
        '(select "account_id" from "transactions" where "transactions"."tenant_id" = $2) ' +
        'and "accounts"."tenant_id" = $3 order by "name"',
      parameters: ['1', '1', '1'],
    })
    expect(await asTenant1(() => query.execute())).toEqual([
      { name: 'alice-1', n: '2' },
      { name: 'bob-1', n: '1' },
    ])
  })

  it('pitfall: a derived table is filtered inside, and its alias is not treated as a table', async () => {
    const query = db
      .selectFrom((eb) => eb.selectFrom('accounts').select(['id', 'name']).as('accounts'))
      .select('name')
      .orderBy('name')
    expectSql(query, {
      sql:
        'select "name" from (select "id", "name" from "accounts" where "accounts"."tenant_id" = $1) as "accounts" ' +
        'order by "name"',
      parameters: ['1'],
    })
    expect(await asTenant1(() => query.execute())).toEqual([{ name: 'alice-1' }, { name: 'bob-1' }])
  })

  it('pitfall: a CTE body is filtered; the CTE name (even one shadowing a table) is not', async () => {
    const query = db
      .with('accounts', (qc) => qc.selectFrom('accounts').select(['id', 'name']))
      .with('big', (qc) =>
        qc.selectFrom('transactions').select(['account_id']).where('amount', '>', '7'),
      )
      .selectFrom('accounts')
      .innerJoin('big', 'big.account_id', 'accounts.id')
      .select('accounts.name')
    expectSql(query, {
      sql:
        'with "accounts" as (select "id", "name" from "accounts" where "accounts"."tenant_id" = $1), ' +
        '"big" as (select "account_id" from "transactions" where "amount" > $2 and "transactions"."tenant_id" = $3) ' +
        'select "accounts"."name" from "accounts" inner join "big" on "big"."account_id" = "accounts"."id"',
      parameters: ['1', '7', '1'],
    })
    expect(await asTenant1(() => query.execute())).toEqual([
      { name: 'alice-1' },
      { name: 'alice-1' },
    ])
  })

  it('pitfall: a recursive CTE filters the real table in its anchor and step', async () => {
    const query = db
      .withRecursive('chain(id)', (qc) =>
        qc
          .selectFrom('accounts')
          .select('id')
          .where('id', '=', '1')
          .unionAll((eb) =>
            eb
              .selectFrom('chain')
              .innerJoin('accounts', 'accounts.id', 'chain.id')
              .select(sql<string>`accounts.id + 1`.as('id')),
          ),
      )
      .selectFrom('chain')
      .select('id')
    expectSql(query, {
      sql:
        'with recursive "chain"("id") as (select "id" from "accounts" where "id" = $1 and "accounts"."tenant_id" = $2 ' +
        'union all select accounts.id + 1 as "id" from "chain" inner join "accounts" on "accounts"."id" = "chain"."id" ' +
        'and "accounts"."tenant_id" = $3) select "id" from "chain"',
      parameters: ['1', '1', '1'],
    })
    const rows = await asTenant1(() => query.execute())
    expect(rows.map((r) => String(r.id))).toEqual(['1', '2', '3'])
  })

  it('pitfall: every arm of a UNION / INTERSECT / EXCEPT is filtered; shared arms are not', async () => {
    // A builder made from `db` is scoped when it is nested, so nest inside the tenant context
    // (or use the expression builder: `eb.selectFrom(...)`).
    const query = runWithTenant('1', () =>
      db
        .selectFrom('accounts')
        .select('name')
        .union(db.selectFrom('currencies').select('code as name'))
        .intersect(
          db
            .selectFrom('accounts')
            .select('name')
            .except(db.selectFrom('transactions').select(sql<string>`'x'`.as('name'))),
        )
        .orderBy('name'),
    )
    expectSql(query, {
      sql:
        'select "name" from "accounts" where "accounts"."tenant_id" = $1 union select "code" as "name" from "currencies" ' +
        'intersect select "name" from "accounts" where "accounts"."tenant_id" = $2 except ' +
        `select 'x' as "name" from "transactions" where "transactions"."tenant_id" = $3 order by "name"`,
      parameters: ['1', '1', '1'],
    })
    const rows = await asTenant1(() =>
      db
        .selectFrom('accounts')
        .select('name')
        .union(db.selectFrom('currencies').select('code as name'))
        .orderBy('name')
        .execute(),
    )
    expect(rows.map((r) => r.name)).toEqual(['EUR', 'USD', 'alice-1', 'bob-1'])
  })

  it('pitfall: a db builder nested under tenant 2 is scoped again for the executing tenant, once', async () => {
    const nested = runWithTenant('2', () => db.selectFrom('transactions').select('account_id'))
    const query = runWithTenant('2', () =>
      db.selectFrom('accounts').select('name').where('id', 'in', nested).orderBy('name'),
    )
    expectSql(query, {
      sql:
        'select "name" from "accounts" where "id" in (select "account_id" from "transactions" ' +
        'where "transactions"."tenant_id" = $1) and "accounts"."tenant_id" = $2 order by "name"',
      parameters: ['1', '1'],
    })
    expect(await asTenant1(() => query.execute())).toEqual([{ name: 'alice-1' }, { name: 'bob-1' }])
    expect(() =>
      db.selectFrom('accounts').where('id', 'in', db.selectFrom('transactions').select('id')),
    ).toThrow(MissingTenantError)
  })

  it('leaves shared tables untouched', async () => {
    const query = db.selectFrom('currencies').select('code').orderBy('code')
    expectSql(query, { sql: 'select "code" from "currencies" order by "code"', parameters: [] })
    expect(await asTenant1(() => query.execute())).toEqual([{ code: 'EUR' }, { code: 'USD' }])
  })

  it('filters a schema-qualified reference through the schema-qualified name', async () => {
    const query = db.withSchema('public').selectFrom('accounts').select('name').orderBy('name')
    expectSql(query, {
      sql: 'select "name" from "public"."accounts" where "public"."accounts"."tenant_id" = $1 order by "name"',
      parameters: ['1'],
    })
    expect(await asTenant1(() => query.execute())).toEqual([{ name: 'alice-1' }, { name: 'bob-1' }])
  })
})

describe('TenantPlugin: writes', () => {
  beforeEach(async () => {
    await seedFinance(tdb.pool)
  })

  it('UPDATE touches only the current tenant', async () => {
    const query = db.updateTable('accounts').set({ name: 'renamed' }).where('id', '=', '1')
    expectSql(query, {
      sql: 'update "accounts" set "name" = $1 where "id" = $2 and "accounts"."tenant_id" = $3',
      parameters: ['renamed', '1', '1'],
    })
    const result = await asTenant1(() => query.executeTakeFirstOrThrow())
    expect(result.numUpdatedRows).toBe(1n)
    const names = (await allRows(tdb.pool, 'accounts')).map((r: any) => r.name)
    expect(names).toEqual(['renamed', 'bob-1', 'alice-2', 'carol-2'])
  })

  it('pitfall: UPDATE ... FROM filters the target and the FROM table', async () => {
    const query = db
      .updateTable('transactions')
      .from('accounts')
      .set({ amount: '0' })
      .whereRef('accounts.id', '=', 'transactions.account_id')
      .where('accounts.name', 'like', 'alice%')
    expectSql(query, {
      sql:
        'update "transactions" set "amount" = $1 from "accounts" where "accounts"."id" = "transactions"."account_id" ' +
        'and "accounts"."name" like $2 and "transactions"."tenant_id" = $3 and "accounts"."tenant_id" = $4',
      parameters: ['0', 'alice%', '1', '1'],
    })
    const result = await asTenant1(() => query.executeTakeFirstOrThrow())
    expect(result.numUpdatedRows).toBe(2n)
    const amounts = (await allRows(tdb.pool, 'transactions')).map((r: any) => r.amount)
    expect(amounts).toEqual(['0', '0', '5', '100', '300'])
  })

  it('pitfall: UPDATE ... SET tenant_id is refused before the database sees it', async () => {
    const query = db.updateTable('accounts').set({ tenant_id: '2' }).where('id', '=', '1')
    await expect(asTenant1(() => query.execute())).rejects.toThrow(CrossTenantWriteError)
    expect((await allRows(tdb.pool, 'accounts')).length).toBe(4)
    // The current tenant as a plain value moves nothing: allowed (ORMs write whole rows).
    const same = db.updateTable('accounts').set({ tenant_id: '1' }).where('id', '=', '1')
    await asTenant1(() => same.execute())
    expect((await allRows(tdb.pool, 'accounts')).length).toBe(4)
  })

  it('DELETE touches only the current tenant', async () => {
    const query = db.deleteFrom('transactions').where('account_id', '=', '1')
    expectSql(query, {
      sql: 'delete from "transactions" where "account_id" = $1 and "transactions"."tenant_id" = $2',
      parameters: ['1', '1'],
    })
    const result = await asTenant1(() => query.executeTakeFirstOrThrow())
    expect(result.numDeletedRows).toBe(2n)
    expect(
      (await allRows(tdb.pool, 'transactions')).map((r: any) => `${r.tenant_id}/${r.id}`),
    ).toEqual(['1/3', '2/1', '2/2'])
  })

  it('pitfall: DELETE ... USING filters the target and the USING table', async () => {
    const query = db
      .deleteFrom('transactions')
      .using('accounts')
      .whereRef('accounts.id', '=', 'transactions.account_id')
      .where('accounts.name', 'like', 'alice%')
    expectSql(query, {
      sql:
        'delete from "transactions" using "accounts" where "accounts"."id" = "transactions"."account_id" ' +
        'and "accounts"."name" like $1 and "transactions"."tenant_id" = $2 and "accounts"."tenant_id" = $3',
      parameters: ['alice%', '1', '1'],
    })
    const result = await asTenant1(() => query.executeTakeFirstOrThrow())
    expect(result.numDeletedRows).toBe(2n)
    expect((await allRows(tdb.pool, 'transactions')).length).toBe(3)
  })

  it('INSERT stamps the current tenant on every row', async () => {
    const query = db.insertInto('accounts').values([
      { id: '10', name: 'new-a' },
      { id: '11', name: 'new-b' },
    ])
    expectSql(query, {
      sql: 'insert into "accounts" ("id", "name", "tenant_id") values ($1, $2, $3), ($4, $5, $6)',
      parameters: ['10', 'new-a', '1', '11', 'new-b', '1'],
    })
    await asTenant1(() => query.execute())
    const { rows } = await tdb.pool.query('select tenant_id from accounts where id >= 10')
    expect(rows).toEqual([{ tenant_id: '1' }, { tenant_id: '1' }])
  })

  it('INSERT with an explicit tenant_id equal to the current tenant is allowed; a missing one in another row is stamped', async () => {
    const query = db.insertInto('accounts').values([
      { tenant_id: '1', id: '10', name: 'x' },
      { id: '11', name: 'y' },
    ])
    expectSql(query, {
      sql: 'insert into "accounts" ("tenant_id", "id", "name") values ($1, $2, $3), ($4, $5, $6)',
      parameters: ['1', '10', 'x', '1', '11', 'y'],
    })
    await asTenant1(() => query.execute())
    const { rows } = await tdb.pool.query('select tenant_id from accounts where id >= 10')
    expect(rows).toEqual([{ tenant_id: '1' }, { tenant_id: '1' }])
  })

  it('pitfall: INSERT naming another tenant throws CrossTenantWriteError and writes nothing', async () => {
    const query = db.insertInto('accounts').values({ tenant_id: '2', id: '10', name: 'sneaky' })
    expect(() => runWithTenant('1', () => query.compile())).toThrow(CrossTenantWriteError)
    await expect(asTenant1(() => query.execute())).rejects.toThrow(CrossTenantWriteError)
    const { rows } = await tdb.pool.query('select count(*)::int as n from accounts where id = 10')
    expect(rows[0].n).toBe(0)
  })

  it('pitfall: INSERT ... SELECT reads through the filtered select and stamps the tenant', async () => {
    const query = db
      .insertInto('transactions')
      .columns(['id', 'account_id', 'amount'])
      .expression((eb) =>
        eb
          .selectFrom('accounts')
          .select([
            sql<string>`id + 100`.as('id'),
            'id as account_id',
            sql<string>`1`.as('amount'),
          ]),
      )
    expectSql(query, {
      sql:
        'insert into "transactions" ("id", "account_id", "amount", "tenant_id") select id + 100 as "id", ' +
        '"id" as "account_id", 1 as "amount", cast($1 as bigint) as "tenant_id" from "accounts" ' +
        'where "accounts"."tenant_id" = $2',
      parameters: ['1', '1'],
    })
    const result = await asTenant1(() => query.executeTakeFirstOrThrow())
    expect(result.numInsertedOrUpdatedRows).toBe(2n)
    const { rows } = await tdb.pool.query(
      'select tenant_id, account_id from transactions where id > 100 order by id',
    )
    expect(rows).toEqual([
      { tenant_id: '1', account_id: '1' },
      { tenant_id: '1', account_id: '2' },
    ])
  })

  it("pitfall: ON CONFLICT DO UPDATE only updates the current tenant's row", async () => {
    const query = db
      .insertInto('accounts')
      .values({ id: '1', name: 'upserted' })
      .onConflict((oc) =>
        oc.columns(['tenant_id', 'id']).doUpdateSet({ name: (eb) => eb.ref('excluded.name') }),
      )
    expectSql(query, {
      sql:
        'insert into "accounts" ("id", "name", "tenant_id") values ($1, $2, $3) on conflict ("tenant_id", "id") ' +
        'do update set "name" = "excluded"."name" where "accounts"."tenant_id" = $4',
      parameters: ['1', 'upserted', '1', '1'],
    })
    await asTenant1(() => query.execute())
    const names = (await allRows(tdb.pool, 'accounts')).map((r: any) => r.name)
    expect(names).toEqual(['upserted', 'bob-1', 'alice-2', 'carol-2'])
  })

  it("pitfall: ON CONFLICT on a non-tenant key cannot update another tenant's row", async () => {
    await tdb.pool.query('create unique index accounts_name_global on accounts (name)')
    try {
      // alice-2 belongs to tenant 2: the conflict fires on its row, the WHERE skips it.
      const query = db
        .insertInto('accounts')
        .values({ id: '50', name: 'alice-2' })
        .onConflict((oc) => oc.column('name').doUpdateSet({ currency: 'USD' }))
      const result = await asTenant1(() => query.executeTakeFirstOrThrow())
      expect(result.numInsertedOrUpdatedRows).toBe(0n)
      const { rows } = await tdb.pool.query(
        `select tenant_id, currency from accounts where name = 'alice-2'`,
      )
      expect(rows).toEqual([{ tenant_id: '2', currency: 'EUR' }])
    } finally {
      await tdb.pool.query('drop index accounts_name_global')
    }
  })

  it('pitfall: ON CONFLICT DO UPDATE SET tenant_id is refused', () => {
    const query = db
      .insertInto('accounts')
      .values({ id: '1', name: 'x' })
      .onConflict((oc) => oc.columns(['tenant_id', 'id']).doUpdateSet({ tenant_id: '2' }))
    expect(() => runWithTenant('1', () => query.compile())).toThrow(CrossTenantWriteError)
  })

  it('pitfall: MERGE on a tenant-aware table is refused with a clear error', async () => {
    const query = db
      .mergeInto('accounts')
      .using('currencies', 'currencies.code', 'accounts.currency')
      .whenMatched()
      .thenDelete()
    await expect(asTenant1(() => query.execute())).rejects.toThrow(UnsupportedQueryError)
    await expect(asTenant1(() => query.execute())).rejects.toThrow(
      /MERGE on tenant-aware table accounts/,
    )
    expect((await allRows(tdb.pool, 'accounts')).length).toBe(4)
  })

  it('a data-modifying CTE is scoped like a top-level write', async () => {
    const query = db
      .with('gone', (qc) =>
        qc.deleteFrom('transactions').where('amount', '>', '15').returning('id'),
      )
      .selectFrom('gone')
      .select((eb) => eb.fn.countAll<string>().as('n'))
    expectSql(query, {
      sql:
        'with "gone" as (delete from "transactions" where "amount" > $1 and "transactions"."tenant_id" = $2 returning "id") ' +
        'select count(*) as "n" from "gone"',
      parameters: ['15', '1'],
    })
    expect(await asTenant1(() => query.executeTakeFirstOrThrow())).toEqual({ n: '1' })
    expect((await allRows(tdb.pool, 'transactions')).length).toBe(4)
  })
})

describe('TenantPlugin: no tenant, raw SQL', () => {
  it('throws MissingTenantError before anything runs, for reads, writes and raw SQL', async () => {
    await expect(db.selectFrom('accounts').selectAll().execute()).rejects.toThrow(
      MissingTenantError,
    )
    // A query on shared tables only needs no tenant (a login route reading users).
    expect(await db.selectFrom('currencies').selectAll().execute()).toHaveLength(2)
    await expect(db.deleteFrom('accounts').execute()).rejects.toThrow(MissingTenantError)
    await expect(sql`delete from accounts`.execute(db)).rejects.toThrow(MissingTenantError)
    expect(() => db.selectFrom('accounts').selectAll().compile()).toThrow(MissingTenantError)
    expect((await allRows(tdb.pool, 'accounts')).length).toBe(4)
  })

  it('pitfall: a query whose whole body is raw sql is not inspected: it is left to RLS', async () => {
    await seedFinance(tdb.pool)
    const query = sql<{ name: string }>`select name from accounts order by name`
    const compiled = runWithTenant('1', () => query.compile(db))
    expect(compiled.sql).toBe('select name from accounts order by name')
    expect(compiled.parameters).toEqual([])
    // Without RLS policies (issue 9) the raw statement sees every tenant's rows:
    // this is why raw SQL must run on a role subject to RLS.
    const { rows } = await asTenant1(() => query.execute(db))
    expect(rows).toHaveLength(4)
  })
})
