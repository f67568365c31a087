import { type Kysely, sql } from 'kysely'
import { jsonArrayFrom, jsonObjectFrom } from 'kysely/helpers/postgres'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { runWithTenant, withoutTenant } from '../src/entries/index.js'
import {
  type AttackDB,
  type AttackFixture,
  type AttackMode,
  attackFixture,
  attempt,
  leaksForeign,
} from './adversarial-fixture.js'

/*
 * Hostile code: Kysely query shapes not in the other adversarial suites. Every attack runs
 * as tenant 1 in both modes; no tenant-2 row may come back, none may change.
 */

let fx: AttackFixture
beforeAll(async () => {
  fx = await attackFixture('adv_kysely_shapes')
})
afterAll(() => fx?.close())
beforeEach(() => fx.reseed())

type Attack = (db: Kysely<AttackDB>) => Promise<unknown>

async function contained(mode: AttackMode, attack: Attack): Promise<unknown[] | undefined> {
  const before = await fx.foreignRows()
  const outcome = await attempt(() => runWithTenant('1', () => attack(mode.db)))
  if (process.env.RT_DEBUG)
    console.log(
      mode.name,
      outcome.error
        ? `ERR ${String((outcome.error as Error).message).slice(0, 120)}`
        : `rows ${JSON.stringify(outcome.rows).slice(0, 160)}`,
    )
  if (outcome.rows) {
    const flat = JSON.stringify(outcome.rows)
    expect(
      leaksForeign(outcome.rows) || /alice-2|carol-2|"two"|\b300\b|\b100\b/.test(flat),
      `${mode.name}: foreign row returned: ${flat}`,
    ).toBe(false)
  }
  expect(await fx.foreignRows(), `${mode.name}: foreign row changed`).toBe(before)
  return outcome.rows
}

function eachMode(name: string, attack: Attack): void {
  for (const i of [0, 1]) {
    it(`${name} [${i === 0 ? 'plugin alone' : 'RLS'}]`, async () => {
      await contained(fx.modes[i]!, attack)
    })
  }
}

describe('reads', () => {
  eachMode('union / intersect / except arms', (db) =>
    db
      .selectFrom('accounts')
      .select('name')
      .union(db.selectFrom('accounts as x').select('x.name'))
      .union((eb) => eb.selectFrom('transactions').select(sql<string>`amount::text`.as('name')))
      .except(db.selectFrom('currencies').select('name'))
      .execute(),
  )
  eachMode('jsonArrayFrom / jsonObjectFrom', (db) =>
    db
      .selectFrom('currencies')
      .select((eb) => [
        jsonArrayFrom(eb.selectFrom('accounts').select(['name', 'tenant_id'])).as('accs'),
        jsonObjectFrom(
          eb.selectFrom('transactions').select(['amount']).orderBy('amount', 'desc').limit(1),
        ).as('top'),
      ])
      .execute(),
  )
  eachMode('lateral join to a tenant table and to a subquery', (db) =>
    db
      .selectFrom('currencies as c')
      .innerJoinLateral(
        (eb) => eb.selectFrom('accounts').select(['name', 'currency']).as('a'),
        (j) => j.onTrue(),
      )
      .crossJoinLateral((eb) => eb.selectFrom('transactions').select('amount').as('t'))
      .select(['a.name', 't.amount'])
      .execute(),
  )
  eachMode('full / right joins between tenant tables', (db) =>
    db
      .selectFrom('accounts as a')
      .fullJoin('transactions as t', 't.account_id', 'a.id')
      .rightJoin('handles as h', 'h.id', 'a.id')
      .select(['a.name', 't.amount', 'h.handle'])
      .execute(),
  )
  eachMode('subquery aliased as another tenant table name', (db) =>
    db
      .selectFrom((eb) =>
        eb.selectFrom('transactions').select(['account_id as id', 'amount']).as('accounts'),
      )
      .innerJoin('accounts as real', 'real.id', 'accounts.id')
      .selectAll()
      .execute(),
  )
  eachMode('withSchema(public) and public.accounts', (db) =>
    Promise.all([
      db.withSchema('public').selectFrom('accounts').selectAll().execute(),
      db
        .selectFrom('public.accounts' as 'accounts')
        .selectAll()
        .execute(),
    ]).then((r) => r.flat()),
  )
  eachMode('sql.table in a join, sql.ref to columns', (db) =>
    (db as Kysely<any>)
      .selectFrom('currencies')
      .innerJoin(sql.table('accounts').as('a'), (j: any) => j.onTrue())
      .select(sql.ref('a.name').as('name'))
      .execute(),
  )
  eachMode('with recursive walking a tenant table', (db) =>
    db
      .withRecursive('walk(id, name, depth)', (q) =>
        q
          .selectFrom('accounts')
          .select(['id', 'name', sql<number>`0`.as('depth')])
          .unionAll((u) =>
            u
              .selectFrom('walk')
              .innerJoin('accounts', 'accounts.id', 'walk.id')
              .select(['accounts.id', 'accounts.name', sql<number>`depth + 1`.as('depth')])
              .where('walk.depth', '<', 2),
          ),
      )
      .selectFrom('walk')
      .selectAll()
      .execute(),
  )
  eachMode('CTE defined in outer query, shadowed name used inside a nested CTE body', (db) =>
    db
      .with('x', (q) =>
        q
          .with('accounts', (c) => c.selectFrom('currencies').select(['code as name']))
          .selectFrom('accounts')
          .select('name'),
      )
      .selectFrom('x')
      .innerJoin('accounts', (j) => j.onTrue())
      .select(['x.name as a', 'accounts.name'])
      .execute(),
  )
  eachMode('explain analyze of a tenant read', (db) =>
    db.selectFrom('accounts').selectAll().explain('json', sql`analyze`),
  )
  eachMode('distinct on, group by, having with subqueries', (db) =>
    db
      .selectFrom('transactions')
      .select(['account_id', (eb) => eb.fn.sum('amount').as('s')])
      .groupBy('account_id')
      .having((eb) =>
        eb(
          eb.fn.sum('amount'),
          '>',
          eb.selectFrom('transactions as t2').select((e) => e.fn.min('t2.amount').as('m')),
        ),
      )
      .execute(),
  )
})

describe('compiled queries executed in another context', () => {
  eachMode(
    'a query compiled for tenant 2, passed to db.executeQuery under tenant 1',
    async (db) => {
      const compiled = runWithTenant('2', () => db.selectFrom('accounts').selectAll().compile())
      return (await db.executeQuery(compiled)).rows
    },
  )
  eachMode(
    'a query compiled inside withoutTenant, executed after it under tenant 1',
    async (db) => {
      const compiled = withoutTenant('compile only', () =>
        db.selectFrom('transactions').selectAll().compile(),
      )
      return (await db.executeQuery(compiled)).rows
    },
  )
  eachMode(
    'a builder compiled for tenant 2 and executed under tenant 1 keeps working',
    async (db) => {
      const query = db.selectFrom('accounts').select('name').orderBy('name')
      runWithTenant('2', () => query.compile())
      const rows = await query.execute()
      expect(rows).toEqual([{ name: 'alice-1' }, { name: 'bob-1' }])
      return rows
    },
  )
})

describe('writes', () => {
  eachMode(
    'insert ... select from a tenant table (stamps current tenant, reads current tenant)',
    (db) =>
      db
        .insertInto('handles')
        .columns(['id', 'handle', 'owner'])
        .expression((eb) =>
          eb
            .selectFrom('accounts')
            .select([
              sql<string>`id + 100`.as('id'),
              sql<string>`name || '-copy'`.as('handle'),
              'name',
            ]),
        )
        .returningAll()
        .execute(),
  )
  eachMode('insert ... select union all with tenant_id listed', (db) =>
    db
      .insertInto('handles')
      .columns(['tenant_id', 'id', 'handle', 'owner'])
      .expression((eb) =>
        eb
          .selectFrom('handles as h')
          .select([
            sql<string>`2`.as('tenant_id'),
            sql<string>`h.id + 500`.as('id'),
            sql<string>`'x' || h.id`.as('handle'),
            'h.owner',
          ])
          .unionAll(
            eb
              .selectFrom('handles as h2')
              .select([
                'h2.tenant_id',
                sql<string>`h2.id + 900`.as('id'),
                sql<string>`'y' || h2.id`.as('handle'),
                'h2.owner',
              ]),
          ),
      )
      .returningAll()
      .execute(),
  )
  eachMode(
    'on conflict do update set col = (subquery over another tenant) + returning subquery',
    (db) =>
      db
        .insertInto('accounts')
        .values({ id: '1', name: 'x', currency: null })
        .onConflict((oc) =>
          oc.columns(['tenant_id', 'id']).doUpdateSet((eb) => ({
            name: eb
              .selectFrom('accounts as o')
              .select('o.name')
              .where('o.name', 'like', '%-2')
              .limit(1) as never,
          })),
        )
        .returning((eb) => [
          'name',
          eb
            .selectFrom('accounts as r')
            .select((e) => e.fn.agg<string>('string_agg', ['r.name', sql`','`]).as('n'))
            .as('all'),
        ])
        .execute(),
  )
  eachMode('update ... from another tenant table with a join condition on id only', (db) =>
    db
      .updateTable('accounts')
      .from('transactions')
      .set(() => ({ name: sql`transactions.amount::text` }))
      .whereRef('transactions.account_id', '=', 'accounts.id')
      .returning(['accounts.name', 'accounts.tenant_id'])
      .execute(),
  )
  eachMode('delete ... using another tenant table', (db) =>
    db
      .deleteFrom('transactions')
      .using('accounts')
      .whereRef('accounts.id', '=', 'transactions.account_id')
      .returningAll()
      .execute(),
  )
  eachMode('data-modifying CTE insert-select inside a select', (db) =>
    db
      .with('ins', (q) =>
        q
          .insertInto('handles')
          .columns(['id', 'handle', 'owner'])
          .expression((eb) =>
            eb
              .selectFrom('handles')
              .select([
                sql<string>`id + 40`.as('id'),
                sql<string>`handle || 'z'`.as('handle'),
                'owner',
              ]),
          )
          .returningAll(),
      )
      .with('upd', (q) => q.updateTable('accounts').set({ name: 'cte' }).returningAll())
      .selectFrom('ins')
      .selectAll()
      .execute(),
  )
  eachMode('merge into a shared table using a subquery of a tenant table', (db) =>
    db
      .mergeInto('currencies as c')
      .using(
        (eb: any) => eb.selectFrom('accounts').select(['name as code', 'name']).as('s'),
        's.code' as never,
        'c.code' as never,
      )
      .whenNotMatched()
      .thenInsertValues({ code: sql.ref('s.code') as never, name: sql.ref('s.name') as never })
      .execute()
      .then(async () => (await fx.tdb.pool.query('select code, name from currencies')).rows),
  )
  eachMode('update with where-in over set operations', (db) =>
    db
      .updateTable('accounts')
      .set({ name: 'hit' })
      .where('id', 'in', (eb) =>
        eb
          .selectFrom('transactions')
          .select('account_id')
          .intersect(eb.selectFrom('transactions as t').select('t.account_id')),
      )
      .returningAll()
      .execute(),
  )
  eachMode('insert with values holding subqueries', (db) =>
    db
      .insertInto('handles')
      .values((eb) => ({
        id: '77',
        handle: eb
          .selectFrom('accounts')
          .select(sql<string>`string_agg(name, ',')`.as('h')) as never,
        owner: eb.selectFrom('accounts as a2').select('a2.name').limit(1) as never,
      }))
      .returningAll()
      .execute(),
  )
})
