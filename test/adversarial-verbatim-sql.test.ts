/**
 * Hostile code: SQL text where Kysely writes a string verbatim (an EXPLAIN format, a
 * function's name) and built-in functions that run SQL given as text (`ts_rewrite`).
 * Each is refused by the plugin, with or without a tenant, so no row of tenant 2 is read or
 * changed and no binding is left behind.
 */
import { type Kysely, sql } from 'kysely'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { runWithTenant } from '../src/entries/index.js'
import {
  type AttackDB,
  type AttackFixture,
  type AttackMode,
  attackFixture,
  attempt,
  leaksForeign,
} from './adversarial-fixture.js'

let fx: AttackFixture
beforeAll(async () => {
  fx = await attackFixture('adv_verbatim_sql')
})
afterAll(() => fx?.close())
beforeEach(() => fx.reseed())

type Attack = (db: Kysely<AttackDB>) => Promise<unknown>

async function contained(mode: AttackMode, attack: Attack): Promise<unknown[] | undefined> {
  const before = await fx.foreignRows()
  const outcome = await attempt(() => runWithTenant('1', () => attack(mode.db)))
  if (outcome.error) {
    const msg = String((outcome.error as Error).message)
    expect(/alice-2|carol-2/.test(msg), `${mode.name}: foreign data in error: ${msg}`).toBe(false)
  }
  if (outcome.rows) {
    const flat = JSON.stringify(outcome.rows)
    expect(
      leaksForeign(outcome.rows) || /alice-2|carol-2|alic.?-2|carol|"two"/.test(flat),
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

describe('functions running SQL text not in the refused list', () => {
  eachMode('ts_rewrite(tsquery, select text) reads every tenant', (db) =>
    db
      .selectFrom('currencies')
      .select((eb) =>
        eb
          .fn('ts_rewrite', [
            eb.val('zzz'),
            eb.val(
              "select 'zzz'::tsquery, phraseto_tsquery('simple', string_agg(name, ' ')) from accounts",
            ),
          ])
          .as('leak'),
      )
      .limit(1)
      .execute(),
  )
})

describe('explain format written verbatim', () => {
  eachMode('explain format injection updates every tenant', (db) =>
    db
      .selectFrom('accounts')
      .selectAll()
      .explain(
        "json, analyze true) update accounts set name = name || 'X' where $1::text is not null --" as never,
      ),
  )
  eachMode('explain format injection reads every tenant through an error', (db) =>
    db
      .selectFrom('accounts')
      .selectAll()
      .explain(
        "json, analyze true) select (select string_agg(name, ',') from accounts where $1::text is not null)::int --" as never,
      ),
  )
})

describe('explain format: execute the prepared bind', () => {
  it('rebinds the transaction to tenant 2 without naming set_config [RLS]', async () => {
    const mode = fx.modes[1]!
    // warm the connection: past its first checkout the bind is the named rowtenancy_bind
    for (let i = 0; i < 3; i++)
      await runWithTenant('1', () => mode.db.selectFrom('accounts').selectAll().execute())
    const outcome = await attempt(() =>
      runWithTenant('1', () =>
        mode.db.transaction().execute(async (trx) => {
          await trx.selectFrom('accounts').selectAll().execute()
          await trx
            .selectFrom('currencies')
            .selectAll()
            .explain("json, analyze true) execute rowtenancy_bind('2') --" as never)
            .catch(() => undefined)
          const r = await sql<{ name: string }>`select name from accounts`.execute(trx)
          return r.rows
        }),
      ),
    )
    expect(leaksForeign(outcome.rows ?? []), JSON.stringify(outcome.rows)).toBe(false)
  })
})

describe('explain format: session-level tenant left on a pooled connection', () => {
  it('a later no-tenant checkout reads tenant 2 [RLS]', async () => {
    const mode = fx.modes[1]!
    await attempt(() =>
      runWithTenant('1', () =>
        mode.db
          .selectFrom('currencies')
          .selectAll()
          .explain(
            `json, analyze true) select U&"\\0073et_config"('rowtenancy.tenant_id', '2', false) --` as never,
          ),
      ),
    )
    // no tenant in context: a shared-table query with a raw subquery (docs: "raw fragments reaching
    // tenant tables see no rows")
    const after = await attempt(() =>
      mode.db
        .selectFrom('currencies')
        .select(sql<string>`(select string_agg(name, ',') from accounts)`.as('x'))
        .execute(),
    )
    // and the ORM pool on the same runtime pool, no tenant
    const orm = await attempt(async () => {
      const { tenantPoolOf } = await import('../src/tenancy/orm-pools.js')
      const pool = tenantPoolOf(mode.tenancy!, {})
      return (await pool.query('select name from accounts')).rows
    })
    expect(JSON.stringify(after.rows ?? []), 'kysely no-tenant').not.toMatch(/alice-2|carol-2/)
    expect(JSON.stringify(orm.rows ?? []), 'orm no-tenant').not.toMatch(/alice-2|carol-2/)
  })
})

describe('explain format: rebinding the transaction', () => {
  it('a builder-only explain rebinds a tenant-1 transaction to tenant 2 [RLS]', async () => {
    const mode = fx.modes[1]!
    const out = await attempt(() =>
      runWithTenant('1', () =>
        mode.db.transaction().execute(async (trx) => {
          await trx
            .selectFrom('currencies')
            .selectAll()
            .explain(
              `json, analyze true) select U&"\\0073et_config"('rowtenancy.tenant_id', '2', true) --` as never,
            )
          return await trx
            .selectFrom('currencies')
            .select(sql<string>`(select string_agg(name, ',') from accounts)`.as('x'))
            .execute()
        }),
      ),
    )
    expect(JSON.stringify(out.rows ?? []), 'raw fragment in tenant 1 transaction').not.toMatch(
      /alice-2|carol-2/,
    )
  })
})

describe('no tenant in context, plugin alone', () => {
  it('explain format injection on a shared-table query writes every tenant', async () => {
    const db = fx.modes[0]!.db
    const before = await fx.foreignRows()
    await attempt(() =>
      db
        .selectFrom('currencies')
        .selectAll()
        .explain("json, analyze true) update accounts set name = name || 'Y' --" as never),
    )
    expect(await fx.foreignRows(), 'no tenant: unscoped write ran').toBe(before)
  })
  it('ts_rewrite on a shared-table query reads every tenant', async () => {
    const db = fx.modes[0]!.db
    const out = await attempt(() =>
      db
        .selectFrom('currencies')
        .select((eb) =>
          eb
            .fn('ts_rewrite', [
              eb.val('zzz'),
              eb.val(
                "select 'zzz'::tsquery, phraseto_tsquery('simple', string_agg(name, ' ')) from accounts",
              ),
            ])
            .as('leak'),
        )
        .limit(1)
        .execute(),
    )
    expect(JSON.stringify(out.rows ?? [])).not.toMatch(/carol/)
  })
})

describe('what the explain injection would leave on the released connection', () => {
  it('refused before it runs: a plain pool.query on that connection finds no session-level tenant [RLS]', async () => {
    const raw = new (await import('pg')).default.Pool({ connectionString: fx.runtimeUrl, max: 1 })
    const { createTenancy } = await import('../src/entries/index.js')
    const t = createTenancy({
      pool: raw,
      adminPool: fx.tdb.pool,
      tables: ['accounts', 'transactions', 'handles'],
    })
    const db = t.kysely<any>()
    await expect(
      runWithTenant('1', () =>
        db
          .selectFrom('currencies')
          .selectAll()
          .explain(
            `json, analyze true) select U&"\\0073et_config"('rowtenancy.tenant_id', '2', false) --` as never,
          ),
      ),
    ).rejects.toThrow(/is not an EXPLAIN format/)
    const left = await raw.query(
      `select current_setting('rowtenancy.tenant_id', true) as t, (select string_agg(name, ',') from accounts) as names`,
    )
    await t.destroy().catch(() => {})
    expect(left.rows[0].names ?? '', 'a plain pool.query on the released connection').not.toMatch(
      /alice-2/,
    )
  })
})
