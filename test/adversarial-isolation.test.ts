import { type Kysely, sql } from 'kysely'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import {
  CrossTenantWriteError,
  MissingTenantError,
  runWithTenant,
  UnsupportedQueryError,
  withoutTenant,
} from '../src/entries/index.js'
import {
  type AttackDB,
  type AttackFixture,
  type AttackMode,
  attackFixture,
  attempt,
  leaksForeign,
} from './adversarial-fixture.js'

/*
 * Attacks from the adversarial review, one section per class, each run in both
 * modes (the plugin alone as the table owner; RLS with the plugin). Every case
 * asserts: no foreign (tenant 2) row returned, no foreign row changed, and,
 * where the attack is deliberate cross-tenant work, an audit record.
 */

let fx: AttackFixture

beforeAll(async () => {
  fx = await attackFixture('adversarial')
})
afterAll(() => fx?.close())
beforeEach(() => fx.reseed())

type Attack = (db: Kysely<AttackDB>) => Promise<unknown>

/**
 * Runs `attack` as tenant 1 and checks the three invariants. `refused`: the
 * attack must be refused with that error class (in every mode).
 */
async function expectContained(
  mode: AttackMode,
  attack: Attack,
  refused?: abstract new (...args: never[]) => Error,
): Promise<unknown[] | undefined> {
  const before = await fx.foreignRows()
  const outcome = await attempt(() => runWithTenant('1', () => attack(mode.db)))
  if (refused) expect(outcome.error, `${mode.name}: refused`).toBeInstanceOf(refused)
  if (outcome.rows)
    expect(leaksForeign(outcome.rows), `${mode.name}: foreign row returned`).toBe(false)
  expect(await fx.foreignRows(), `${mode.name}: foreign row changed`).toBe(before)
  return outcome.rows
}

function eachMode(name: string, body: (mode: AttackMode) => Promise<void>): void {
  for (const i of [0, 1]) {
    it(`${name} [${i === 0 ? 'plugin alone' : 'RLS'}]`, () => body(fx.modes[i]!))
  }
}

describe('class 1: CTE names never shadow a write target', () => {
  eachMode('DELETE with a CTE named like the target deletes only the current tenant', async (m) => {
    await expectContained(m, (db) =>
      db
        .with('transactions', (q) => q.selectFrom('transactions').select('id'))
        .deleteFrom('transactions')
        .where('id', 'in', (q) => q.selectFrom('transactions').select('id'))
        .execute(),
    )
    const { rows } = await fx.tdb.pool.query(
      'select count(*)::int as n from transactions where tenant_id = 1',
    )
    expect(rows[0].n).toBe(0)
  })

  eachMode('UPDATE with a CTE named like the target is filtered', async (m) => {
    await expectContained(m, (db) =>
      db
        .with('accounts', (q) => q.selectFrom('accounts').select('id'))
        .updateTable('accounts')
        .set({ name: 'pwned' })
        .execute(),
    )
  })

  eachMode('UPDATE ... SET tenant_id behind a CTE of the same name is refused', async (m) => {
    await expectContained(
      m,
      (db) =>
        db
          .with('accounts', (q) => q.selectFrom('accounts').select('id'))
          .updateTable('accounts')
          .set({ tenant_id: '2' })
          .execute(),
      CrossTenantWriteError,
    )
  })

  eachMode('INSERT naming another tenant behind a CTE of the same name is refused', async (m) => {
    await expectContained(
      m,
      (db) =>
        db
          .with('accounts', (q) => q.selectFrom('accounts').select('id'))
          .insertInto('accounts')
          .values({ tenant_id: '2', id: '77', name: 'planted', currency: null })
          .execute(),
      CrossTenantWriteError,
    )
  })

  eachMode('an upsert behind a CTE of the same name only updates the current tenant', async (m) => {
    await expectContained(m, (db) =>
      db
        .with('accounts', (q) => q.selectFrom('accounts').select('id'))
        .insertInto('accounts')
        .values({ id: '1', name: 'upserted', currency: null })
        .onConflict((oc) => oc.columns(['tenant_id', 'id']).doUpdateSet({ name: 'upserted' }))
        .execute(),
    )
  })

  eachMode('MERGE into a tenant table behind a CTE of the same name is refused', async (m) => {
    await expectContained(
      m,
      (db) =>
        db
          .with('accounts', (q) => q.selectFrom('accounts').select('id'))
          .mergeInto('accounts')
          .using('currencies', 'currencies.code', 'accounts.currency')
          .whenMatched()
          .thenUpdateSet({ name: 'merged' })
          .execute(),
      UnsupportedQueryError,
    )
  })

  eachMode('a recursive CTE named like the target does not shadow it', async (m) => {
    await expectContained(m, (db) =>
      db
        .withRecursive('transactions(id)', (q) =>
          q
            .selectFrom('transactions')
            .select('id')
            .unionAll((u) => u.selectFrom('transactions').select('id').where('id', '<', '0')),
        )
        .deleteFrom('transactions')
        .where('id', 'in', (q: any) => q.selectFrom('transactions').select('id'))
        .execute(),
    )
  })

  eachMode('a nested WITH in a subquery scopes only its own query', async (m) => {
    await expectContained(m, (db) =>
      db
        .deleteFrom('transactions')
        .where('id', 'in', () =>
          db
            .with('transactions', (c) => c.selectFrom('transactions').select('id'))
            .selectFrom('transactions')
            .select('id'),
        )
        .execute(),
    )
  })

  eachMode('a data-modifying CTE is scoped like a top-level write', async (m) => {
    const rows = await expectContained(m, (db) =>
      db
        .with('gone', (q) => q.deleteFrom('transactions').returningAll())
        .selectFrom('gone')
        .selectAll()
        .execute(),
    )
    expect(rows).toHaveLength(3)
  })

  eachMode('a CTE named like a shared table reads its own (filtered) body', async (m) => {
    const rows = await expectContained(m, (db) =>
      db
        .with('currencies', (q) => q.selectFrom('accounts').select(['name as code', 'name']))
        .selectFrom('currencies')
        .selectAll()
        .execute(),
    )
    expect(rows).toHaveLength(2)
  })
})

describe('class 2: the tenant column is assigned in no shape', () => {
  eachMode('row-valued SET ("tenant_id") = (select 2)', async (m) => {
    await expectContained(
      m,
      (db) =>
        db
          .updateTable('accounts')
          .set(sql`("tenant_id")` as never, sql`(select 2)`)
          .execute(),
      CrossTenantWriteError,
    )
  })

  eachMode('SET sql.ref(tenant_id) and SET accounts.tenant_id', async (m) => {
    await expectContained(
      m,
      (db) =>
        db
          .updateTable('accounts')
          .set(sql.ref('tenant_id') as never, '2' as never)
          .execute(),
      CrossTenantWriteError,
    )
    await expectContained(
      m,
      (db) =>
        db
          .updateTable('accounts')
          .set('accounts.tenant_id' as never, '2' as never)
          .execute(),
      CrossTenantWriteError,
    )
  })

  eachMode('SET tenant_id to an expression (not a plain current-tenant value)', async (m) => {
    await expectContained(
      m,
      (db) => db.updateTable('accounts').set({ tenant_id: sql<string>`1 + 1` }).execute(),
      CrossTenantWriteError,
    )
  })

  eachMode('ON CONFLICT DO UPDATE SET tenant_id (a value, or excluded.tenant_id)', async (m) => {
    await expectContained(
      m,
      (db) =>
        db
          .insertInto('accounts')
          .values({ id: '1', name: 'x', currency: null })
          .onConflict((oc) => oc.columns(['tenant_id', 'id']).doUpdateSet({ tenant_id: '2' }))
          .execute(),
      CrossTenantWriteError,
    )
    await expectContained(
      m,
      (db) =>
        db
          .insertInto('accounts')
          .values({ id: '1', name: 'x', currency: null })
          .onConflict((oc) =>
            oc
              .columns(['tenant_id', 'id'])
              .doUpdateSet((eb) => ({ tenant_id: eb.ref('excluded.tenant_id') })),
          )
          .execute(),
      CrossTenantWriteError,
    )
  })

  eachMode('raw SET column spelling the tenant column across fragments', async (m) => {
    // `"tenant${''}_id"` renders as "tenant_id": no single fragment names the column.
    await expectContained(
      m,
      (db) =>
        db
          .updateTable('transactions')
          .set(sql`"tenant${sql.raw('')}_id"` as never, '2' as never)
          .where('id', '=', '3')
          .execute(),
      CrossTenantWriteError,
    )
  })

  eachMode('raw SET value that carries its own tenant_id assignment', async (m) => {
    // `set "amount" = 7, tenant_id = 2`: the column is amount, the raw value adds an item.
    for (const value of [
      sql`7, tenant_id = 2`,
      sql`7, ${sql.ref('tenant_id')} = 2`,
      sql`7, "tenant${sql.raw('')}_id" = 2`,
      sql`(select 7), (tenant_id) = row(2)`,
    ]) {
      await expectContained(
        m,
        (db) =>
          db
            .updateTable('transactions')
            .set({ amount: value as never })
            .where('id', '=', '3')
            .execute(),
        CrossTenantWriteError,
      )
      await expectContained(
        m,
        (db) =>
          db
            .insertInto('transactions')
            .values({ id: '3', account_id: '2', amount: '1' })
            .onConflict((oc) =>
              oc.columns(['tenant_id', 'id']).doUpdateSet({ amount: value as never }),
            )
            .execute(),
        CrossTenantWriteError,
      )
    }
  })

  eachMode(
    'raw SET column with a raw value that carries its own tenant_id assignment',
    async (m) => {
      // the column is raw too (`sql\`"amount"\``): the value's raw SQL adds `tenant_id = 2` all the same
      await expectContained(
        m,
        (db) =>
          db
            .updateTable('transactions')
            .set(sql`"amount"` as never, sql`7, tenant_id = 2` as never)
            .where('id', '=', '3')
            .execute(),
        CrossTenantWriteError,
      )
    },
  )

  eachMode(
    'INSERT (..., tenant_id, ...) SELECT with a raw selection of two expressions',
    async (m) => {
      // `select h.id + 500, 2, <stamp>, h.owner`: the raw item fills id AND tenant_id, and the
      // stamp meant for tenant_id lands in handle; the select list is one short of the columns.
      await expectContained(
        m,
        (db) =>
          db
            .insertInto('handles')
            .columns(['id', 'tenant_id', 'handle', 'owner'])
            .expression((eb) =>
              eb
                .selectFrom('handles as h')
                .select([
                  sql<string>`h.id + 500, 2`.as('id'),
                  sql<string>`'x'`.as('handle'),
                  'h.owner',
                ]),
            )
            .execute(),
        UnsupportedQueryError,
      )
    },
  )

  eachMode('INSERT (..., tenant_id) SELECT 2, ... stamps the current tenant', async (m) => {
    await expectContained(m, (db) =>
      db
        .insertInto('accounts')
        .columns(['id', 'name', 'tenant_id'])
        .expression(
          db.selectNoFrom([
            sql<string>`88`.as('id'),
            sql<string>`'planted'`.as('name'),
            sql<string>`2`.as('tenant_id'),
          ]),
        )
        .execute(),
    )
    const { rows } = await fx.tdb.pool.query(`select tenant_id::text from accounts where id = 88`)
    expect(rows).toEqual([{ tenant_id: '1' }])
  })

  eachMode('INSERT values with tenant_id 2, or a raw tenant_id, is refused', async (m) => {
    await expectContained(
      m,
      (db) =>
        db
          .insertInto('accounts')
          .values({ tenant_id: '2', id: '90', name: 'x', currency: null })
          .execute(),
      CrossTenantWriteError,
    )
    await expectContained(
      m,
      (db) =>
        db
          .insertInto('accounts')
          .values({ tenant_id: sql<string>`2`, id: '91', name: 'x', currency: null })
          .execute(),
      UnsupportedQueryError,
    )
  })
})

describe('class 9: DDL over tenant-aware tables', () => {
  eachMode(
    'createView / materialized view / create table as over a tenant table are refused',
    async (m) => {
      for (const build of [
        (db: Kysely<AttackDB>) =>
          db.schema.createView('v_acc').as(db.selectFrom('accounts').selectAll()),
        (db: Kysely<AttackDB>) =>
          db.schema.createView('mv_acc').materialized().as(db.selectFrom('accounts').selectAll()),
        (db: Kysely<AttackDB>) =>
          db.schema.createTable('t_copy').as(db.selectFrom('transactions').selectAll()),
        (db: Kysely<AttackDB>) => db.schema.createIndex('acc_name').on('accounts').column('name'),
        (db: Kysely<AttackDB>) => db.schema.alterTable('accounts').addColumn('x', 'text'),
        (db: Kysely<AttackDB>) => db.schema.dropTable('handles'),
      ]) {
        await expectContained(m, (db) => build(db).execute(), UnsupportedQueryError)
      }
      const { rows } = await fx.tdb.pool.query(
        `select count(*)::int as n from pg_class where relname in ('v_acc', 'mv_acc', 't_copy', 'acc_name')`,
      )
      expect(rows[0].n).toBe(0)
    },
  )

  eachMode('a view over a shared table is left alone', async (m) => {
    const compiled = runWithTenant('1', () =>
      m.db.schema.createView('v_cur').as(m.db.selectFrom('currencies').selectAll()).compile(),
    )
    expect(compiled.sql).toBe('create view "v_cur" as select * from "currencies"')
    expect(compiled.parameters).toEqual([])
  })

  it('inside withoutTenant (RLS mode) the view is created with no tenant literal, and audited', async () => {
    const m = fx.modes[1]!
    await withoutTenant('reporting view', () =>
      m.db.schema
        .createView('v_all')
        .as(m.db.selectFrom('accounts').select(['id', 'name']))
        .execute(),
    )
    const { rows } = await fx.tdb.pool.query(`select pg_get_viewdef('v_all'::regclass) as def`)
    expect(rows[0].def).not.toMatch(/tenant_id|\b1\b/)
    const audit = await fx.tdb.pool.query(`select reason, statement from audit_log`)
    expect(audit.rows).toEqual([
      {
        reason: 'reporting view',
        statement: 'create view "v_all" as select "id", "name" from "accounts"',
      },
    ])
    await fx.tdb.pool.query('drop view v_all')
  })
})

describe('surprise: shared-table-only queries need no tenant', () => {
  eachMode(
    'a query on shared tables runs with no tenant; a tenant table still fails closed',
    async (m) => {
      expect(await m.db.selectFrom('currencies').selectAll().execute()).toHaveLength(2)
      await expect(m.db.selectFrom('accounts').selectAll().execute()).rejects.toThrow(
        MissingTenantError,
      )
      await expect(sql`select * from accounts`.execute(m.db)).rejects.toThrow(MissingTenantError)
      await expect(
        m.db
          .selectFrom('currencies')
          .where('code', 'in', (q) => q.selectFrom('accounts').select('currency'))
          .selectAll()
          .execute(),
      ).rejects.toThrow(MissingTenantError)
    },
  )

  it('RLS mode: a raw fragment reaching a tenant table from a shared query runs unbound (no rows)', async () => {
    const m = fx.modes[1]!
    const rows = await m.db
      .selectFrom('currencies')
      .selectAll()
      .where(sql<boolean>`exists (select 1 from accounts)`)
      .execute()
    expect(rows).toEqual([])
  })
})

describe('surprise: raw fragments in table positions', () => {
  eachMode('sql.table(name) is read as the table and scoped', async (m) => {
    const rows = await expectContained(m, (db) =>
      db
        .selectFrom(sql.table('accounts').as('a') as never)
        .selectAll()
        .execute(),
    )
    expect(rows).toHaveLength(2)
  })

  it('strictRaw refuses a raw table the plugin cannot read (plugin alone)', async () => {
    const strict = fx.pluginAlone({ strictRaw: true })
    const mode: AttackMode = { name: 'plugin alone', db: strict, audited: false }
    await expectContained(
      mode,
      (db) =>
        db
          .selectFrom(sql`accounts`.as('a') as never)
          .selectAll()
          .execute(),
      UnsupportedQueryError,
    )
    await expectContained(
      mode,
      (db) =>
        (db as Kysely<any>)
          .selectFrom('currencies')
          .innerJoin(sql`accounts`.as('a'), 'a.currency', 'currencies.code')
          .selectAll()
          .execute(),
      UnsupportedQueryError,
    )
    // Without strictRaw, the same raw table is not scoped: the documented hole RLS closes.
    const loose = await runWithTenant('1', () =>
      fx.modes[0]!.db.selectFrom(sql`accounts`.as('a') as never)
        .selectAll()
        .execute(),
    )
    expect(leaksForeign(loose)).toBe(true)
  })
})

describe('surprise: ON CONFLICT DO UPDATE onto another tenant conflicting row', () => {
  it('plugin alone: skipped like DO NOTHING; RLS: refused by the policy (42501); the row is untouched in both', async () => {
    const attack = (db: Kysely<AttackDB>) =>
      db
        .insertInto('handles')
        .values({ id: '5', handle: 'two', owner: 'attacker' })
        .onConflict((oc) => oc.column('handle').doUpdateSet({ owner: 'attacker' }))
        .execute()
    const plain = await expectContained(fx.modes[0]!, attack)
    expect(plain).toBeDefined()
    await expectContained(fx.modes[1]!, async (db) => {
      await expect(attack(db)).rejects.toMatchObject({ code: '42501' })
      return []
    })
  })
})
