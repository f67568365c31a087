import { type Kysely, sql } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { createTenancy, runWithTenant, type Tenancy, withoutTenant } from '../src/entries/index.js'
import { TenantPool, withTenantClient } from '../src/entries/pg.js'
import {
  ATTACK_TABLES,
  type AttackDB,
  type AttackFixture,
  attackFixture,
} from './adversarial-fixture.js'

/*
 * Hostile code: state and handles that outlive a checkout. Each test uses a pool of
 * ONE connection so the next checkout is certainly the same server session.
 */

let fx: AttackFixture
const extra: Array<() => Promise<unknown>> = []

beforeAll(async () => {
  fx = await attackFixture('adv_checkout_state')
})
afterAll(async () => {
  for (const f of extra) await f().catch(() => {})
  await fx?.close()
})
beforeEach(() => fx.reseed())

function oneConnTenancy(): { tenancy: Tenancy; db: Kysely<AttackDB>; pool: pg.Pool } {
  const pool = new pg.Pool({ connectionString: fx.runtimeUrl, max: 1 })
  const tenancy = createTenancy({
    pool,
    adminPool: new pg.Pool({ connectionString: fx.tdb.url, max: 1 }),
    tables: ATTACK_TABLES,
    audit: { table: 'audit_log' },
  })
  extra.push(() => tenancy.destroy())
  return { tenancy, db: tenancy.kysely<AttackDB>(), pool }
}

const names = (rows: readonly unknown[]) => rows.map((r) => (r as { name: string }).name).sort()

describe('handles kept after release', () => {
  it('a Kysely transaction kept after it ended does not rebind the next checkout (tenant 2 raw SQL sees only tenant 2)', async () => {
    const { db } = oneConnTenancy()
    let leaked: Kysely<AttackDB> | undefined
    await runWithTenant('1', () =>
      db.transaction().execute(async (trx) => {
        await trx.selectFrom('accounts').selectAll().execute()
        leaked = trx
      }),
    )
    const seen = await runWithTenant('2', () =>
      db.transaction().execute(async (trx2) => {
        await trx2.selectFrom('accounts').selectAll().execute()
        // tenant 1's code, still holding its finished transaction, runs meanwhile
        const stale = await runWithTenant('1', () =>
          leaked!
            .selectFrom('currencies')
            .selectAll()
            .execute()
            .then(
              () => 'ran',
              (e: unknown) => e,
            ),
        )
        const raw = await sql<{ name: string }>`select name from accounts`.execute(trx2)
        return { stale, raw: names(raw.rows) }
      }),
    )
    // tenant 2's raw SQL must see tenant 2's rows only
    expect(seen.raw, `stale handle outcome: ${String(seen.stale)}`).toEqual(['alice-2', 'carol-2'])
  })

  it('a db.connection() handle kept after release cannot read inside another tenant transaction', async () => {
    const { db } = oneConnTenancy()
    let leaked: Kysely<AttackDB> | undefined
    await runWithTenant('1', () =>
      db.connection().execute(async (conn) => {
        await conn.selectFrom('accounts').selectAll().execute()
        leaked = conn
      }),
    )
    const seen = await runWithTenant('2', () =>
      db.transaction().execute(async (trx2) => {
        await trx2.selectFrom('accounts').selectAll().execute()
        const stale = await runWithTenant('1', () =>
          sql<{ name: string }>`select name from accounts`.execute(leaked!).then(
            (r) => names(r.rows),
            (e: unknown) => e,
          ),
        )
        const raw = await sql<{ name: string }>`select name from accounts`.execute(trx2)
        return { stale, raw: names(raw.rows) }
      }),
    )
    expect(seen.stale).not.toEqual(['alice-2', 'carol-2'])
    expect(seen.raw, `stale handle outcome: ${JSON.stringify(seen.stale)}`).toEqual([
      'alice-2',
      'carol-2',
    ])
  })

  it('a withTenantClient client kept after release cannot read another tenant (pg client reused)', async () => {
    const pool = new pg.Pool({ connectionString: fx.runtimeUrl, max: 1 })
    extra.push(() => pool.end())
    let leaked: pg.PoolClient | undefined
    await withTenantClient(
      pool,
      async (c) => {
        await c.query('select 1')
        leaked = c
      },
      { tenantId: '1' },
    )
    const stolen = await withTenantClient(
      pool,
      async (c) => {
        await c.query('select 1')
        // tenant 1's code, holding its old client, runs meanwhile
        const r = await leaked!.query('select name from accounts').then(
          (x) => names(x.rows),
          (e: unknown) => e,
        )
        return r
      },
      { tenantId: '2' },
    )
    expect(stolen, 'tenant 1 code read through its released client').not.toEqual([
      'alice-2',
      'carol-2',
    ])
  })
})

describe('handles kept after release (builder)', () => {
  it('a db.connection() handle kept after release, running a builder query, does not rebind tenant 2 transaction to tenant 1', async () => {
    const { db } = oneConnTenancy()
    let leaked: Kysely<AttackDB> | undefined
    await runWithTenant('1', () =>
      db.connection().execute(async (conn) => {
        await conn.selectFrom('accounts').selectAll().execute()
        leaked = conn
      }),
    )
    const seen = await runWithTenant('2', () =>
      db.transaction().execute(async (trx2) => {
        await trx2.selectFrom('accounts').selectAll().execute()
        const stale = await runWithTenant('1', () =>
          leaked!
            .selectFrom('accounts')
            .select('name')
            .execute()
            .then(
              (r) => names(r),
              (e: unknown) => e,
            ),
        )
        const raw = await sql<{ name: string }>`select name from accounts`.execute(trx2)
        return { stale, raw: names(raw.rows) }
      }),
    )
    expect(seen.raw).toEqual(['alice-2', 'carol-2'])
  })
})

describe('session state that survives the checkout protocol', () => {
  it('a cursor WITH HOLD declared for tenant 1 is not readable by the next checkout for tenant 2', async () => {
    const { db } = oneConnTenancy()
    await runWithTenant('1', () =>
      sql`declare rt_c cursor with hold for select name from accounts`.execute(db),
    )
    const outcome = await runWithTenant('2', () =>
      sql<{ name: string }>`fetch all from rt_c`.execute(db).then(
        (r) => names(r.rows),
        (e: unknown) => (e as Error).message,
      ),
    )
    expect(outcome, 'tenant 2 fetched a cursor tenant 1 left').not.toEqual(['alice-1', 'bob-1'])
  })

  it('a cursor WITH HOLD declared inside a tenant 1 transaction is not readable by tenant 2 next checkout', async () => {
    const { db } = oneConnTenancy()
    await runWithTenant('1', () =>
      db.transaction().execute(async (trx) => {
        await sql`declare rt_c2 cursor with hold for select name from accounts`.execute(trx)
      }),
    )
    const outcome = await runWithTenant('2', () =>
      sql<{ name: string }>`fetch all from rt_c2`.execute(db).then(
        (r) => names(r.rows),
        (e: unknown) => (e as Error).message,
      ),
    )
    expect(outcome, 'tenant 2 fetched a cursor tenant 1 left').not.toEqual(['alice-1', 'bob-1'])
  })

  it('a cursor WITH HOLD declared through withTenantClient(1) is not readable by withTenantClient(2)', async () => {
    const pool = new pg.Pool({ connectionString: fx.runtimeUrl, max: 1 })
    extra.push(() => pool.end())
    await withTenantClient(
      pool,
      (c) => c.query('declare rt_c3 cursor with hold for select name from accounts'),
      {
        tenantId: '1',
      },
    )
    const outcome = await withTenantClient(
      pool,
      (c) =>
        c.query('fetch all from rt_c3').then(
          (r) => names(r.rows),
          (e: unknown) => (e as Error).message,
        ),
      { tenantId: '2' },
    ).catch((e: unknown) => (e as Error).message)
    expect(outcome, 'tenant 2 fetched a cursor tenant 1 left').not.toEqual(['alice-1', 'bob-1'])
  })

  it('a builder-only eb.fn set_config(..., false) leaves no session tenant for the next foreign query', async () => {
    const { db, pool } = oneConnTenancy()
    await runWithTenant('1', () =>
      db
        .selectNoFrom((eb) =>
          eb.fn('set_config', [eb.val('rowtenancy.tenant_id'), eb.val('2'), sql`false`]).as('x'),
        )
        .execute()
        .catch(() => undefined),
    )
    // builder-only variant (no RawNode at all): the boolean as a parameter; refused
    await expect(
      runWithTenant('1', () =>
        db
          .selectNoFrom((eb) =>
            eb
              .fn('set_config', [eb.val('rowtenancy.tenant_id'), eb.val('2'), eb.val(false)])
              .as('x'),
          )
          .execute(),
      ),
    ).rejects.toThrow(/set_config\(\) is refused/)
    const { rows } = await pool.query('select name from accounts')
    expect(names(rows), 'foreign pool.query after rowtenancy work').toEqual([])
  })

  it('a builder-only eb.fn set_config(..., true) inside a tenant 1 transaction does not widen a raw fragment to tenant 2', async () => {
    const { db } = oneConnTenancy()
    const rows = await runWithTenant('1', () =>
      db.transaction().execute(async (trx) => {
        await trx
          .selectNoFrom((eb) =>
            eb
              .fn('set_config', [eb.val('rowtenancy.tenant_id'), eb.val('2'), eb.val(true)])
              .as('x'),
          )
          .execute()
          .catch(() => undefined)
        return trx
          .selectFrom('currencies')
          .select(sql<string>`(select string_agg(name, ',' order by name) from accounts)`.as('n'))
          .limit(1)
          .execute()
      }),
    )
    expect(rows[0]?.n ?? '').not.toContain('-2')
  })
})

describe('plugin alone: strictRaw with no tenant', () => {
  it('strictRaw refuses (or empties) a raw table fragment when no tenant is in context', async () => {
    const db = fx.pluginAlone({ strictRaw: true })
    const outcome = await db
      .selectFrom(sql`accounts`.as('a'))
      .selectAll()
      .execute()
      .then(
        (r) => names(r),
        (e: unknown) => e,
      )
    expect(outcome, 'no tenant + strictRaw: every tenant returned').not.toContain('alice-2')
  })

  it('same with sql.id naming the table', async () => {
    const db = fx.pluginAlone({ strictRaw: true })
    const outcome = await db
      .selectFrom(sql.id('accounts').as('a') as never)
      .selectAll()
      .execute()
      .then(
        (r) => names(r),
        (e: unknown) => e,
      )
    expect(outcome).not.toContain('alice-2')
  })
})

describe('builder calls the plugin cannot scope', () => {
  // Each is a builder query (no sql fragment): a function that sets the binding, or runs
  // SQL given as text, a cursor or a table name, or a "name" that is SQL text.
  const calls: [string, (db: Kysely<AttackDB>) => Promise<unknown>][] = [
    [
      'query_to_xml over a tenant table',
      (db) =>
        db
          .selectNoFrom((eb) =>
            eb
              .fn('query_to_xml', [
                eb.val('select name from accounts'),
                eb.val(true),
                eb.val(false),
                eb.val(''),
              ])
              .as('x'),
          )
          .execute(),
    ],
    [
      'table_to_xml by table name',
      (db) =>
        db
          .selectNoFrom((eb) =>
            eb
              .fn('pg_catalog.table_to_xml', [
                eb.cast(eb.val('accounts'), 'text'),
                eb.val(true),
                eb.val(false),
                eb.val(''),
              ])
              .as('x'),
          )
          .execute(),
    ],
    [
      'ts_stat',
      (db) =>
        db
          .selectNoFrom((eb) =>
            eb.fn('ts_stat', [eb.val('select to_tsvector(name) from accounts')]).as('x'),
          )
          .execute(),
    ],
    [
      'set_config as an aggregate, qualified and quoted',
      (db) =>
        db
          .selectFrom('currencies')
          .select((eb) =>
            eb.fn
              .agg('pg_catalog."set_config"', [
                eb.val('rowtenancy.tenant_id'),
                eb.val('2'),
                eb.val(false),
              ])
              .as('x'),
          )
          .execute(),
    ],
    [
      'SQL text as a function name',
      (db) =>
        db
          .selectFrom('currencies')
          .select((eb) =>
            eb.fn("(select string_agg(name, ',') from accounts) || lower", [eb.val('')]).as('x'),
          )
          .execute(),
    ],
  ]
  for (const [name, call] of calls) {
    it(`${name}: refused in every mode, with or without a tenant`, async () => {
      for (const mode of fx.modes) {
        await expect(
          runWithTenant('1', () => call(mode.db)),
          mode.name,
        ).rejects.toThrow(/refused in a scoped query|is not a function name/)
        await expect(call(mode.db), `${mode.name}, no tenant`).rejects.toThrow(
          /refused in a scoped query|is not a function name/,
        )
      }
    })
  }

  it('plain function names, qualified or quoted, still run', async () => {
    for (const mode of fx.modes) {
      const rows = await runWithTenant('1', () =>
        mode.db
          .selectFrom('accounts')
          .select((eb) => [
            eb.fn<string>('lower', [eb.ref('name')]).as('a'),
            eb.fn<string>('pg_catalog.upper', [eb.ref('name')]).as('b'),
            eb.fn<string>('"btrim"', [eb.ref('name')]).as('c'),
          ])
          .orderBy('name')
          .execute(),
      )
      expect(
        rows.map((r) => r.b),
        mode.name,
      ).toEqual(['ALICE-1', 'BOB-1'])
    }
  })

  it('inside withoutTenant the plugin leaves such a call alone (audited cross-tenant work)', async () => {
    const { db } = oneConnTenancy()
    const rows = await withoutTenant('test: xml export of currencies', () =>
      db
        .selectNoFrom((eb) =>
          eb
            .fn<string>('query_to_xml', [
              eb.val('select code from currencies order by code limit 1'),
              eb.val(true),
              eb.val(false),
              eb.val(''),
            ])
            .as('x'),
        )
        .execute(),
    )
    expect(rows[0]?.x).toMatch(/<code>/)
  })
})

describe('more state a checkout leaves', () => {
  it('a builder UPDATE of pg_settings (set_config by a rule) is refused, and leaves no search_path behind', async () => {
    // pg_settings' update rule calls set_config(name, setting, false): a session-level
    // setting, from a builder query with no sql fragment, which the driver trusted to leave
    // the session alone. A later tenant's checkout then ran on the search_path it chose.
    const { db, pool } = oneConnTenancy()
    // also as a data-modifying CTE (no RETURNING: pg_settings takes none) under a read
    const set = (k: Kysely<any>) =>
      k
        .with('s', (q) =>
          q
            .updateTable('pg_catalog.pg_settings')
            .set({ setting: 'pg_catalog' })
            .where('name', '=', 'search_path'),
        )
        .selectFrom('currencies')
        .select('code')
        .execute()
    for (const k of [db as Kysely<any>, fx.modes[0]!.db as Kysely<any>]) {
      await expect(runWithTenant('1', () => set(k))).rejects.toThrow(/pg_settings/)
      await expect(
        runWithTenant('1', () =>
          k
            .updateTable('pg_settings')
            .set({ setting: 'pg_catalog' })
            .where('name', '=', 'search_path')
            .execute(),
        ),
      ).rejects.toThrow(/pg_settings/)
      await expect(
        k
          .updateTable('pg_settings')
          .set({ setting: 'pg_catalog' })
          .where('name', '=', 'search_path')
          .execute(),
      ).rejects.toThrow(/pg_settings/)
    }
    const rows = await runWithTenant('2', () =>
      db.selectFrom('currencies').select('code').execute(),
    )
    expect(rows.length).toBeGreaterThan(0)
    expect((await pool.query('show search_path')).rows[0].search_path).not.toBe('pg_catalog')
  })

  it('a LISTEN through a raw statement does not follow the connection into the next checkout', async () => {
    const { db } = oneConnTenancy()
    await runWithTenant('1', () => sql`listen tenant_one_events`.execute(db))
    const channels = await runWithTenant('2', () =>
      sql<{ c: string }>`select pg_listening_channels() as c`.execute(db),
    )
    expect(channels.rows).toEqual([])
  })

  it('withTenantClient: the callback may not release the client, and a callback-style query after it ends gets the error', async () => {
    const pool = new pg.Pool({ connectionString: fx.runtimeUrl, max: 1 })
    extra.push(() => pool.end())
    let kept: pg.PoolClient | undefined
    await expect(
      withTenantClient(
        pool,
        async (c) => {
          kept = c
          c.release()
        },
        { tenantId: '1' },
      ),
    ).rejects.toThrow(/gives the client back itself/)
    const err = await new Promise<Error | null>((resolve) =>
      kept!.query('select name from accounts', (e: Error | null) => resolve(e)),
    )
    expect(err?.message).toMatch(/released to the pool/)
    // The pool still serves the next tenant, and only its rows.
    const rows = await withTenantClient(pool, (c) => c.query('select name from accounts'), {
      tenantId: '2',
    })
    expect(names(rows.rows)).toEqual(['alice-2', 'carol-2'])
  })
})

/** pg's own query called on the view: refused (thrown or rejected) once the view is released. */
const rawQuery = async (c: pg.PoolClient, text: string) =>
  (Object.getPrototypeOf(c).query as (t: string) => Promise<pg.QueryResult>).call(c, text)

describe('withTenantClient: kept client, prototype query', () => {
  it('tenant 1 reads tenant 2 rows through its released client', async () => {
    const pool = new pg.Pool({ connectionString: fx.runtimeUrl, max: 1 })
    extra.push(() => pool.end())
    let leaked: pg.PoolClient | undefined
    await withTenantClient(
      pool,
      async (c) => {
        await c.query('select 1')
        leaked = c
      },
      { tenantId: '1' },
    )
    // sanity: the guarded property refuses
    await expect(leaked!.query('select 1')).rejects.toThrow(/released/)
    const stolen = await withTenantClient(
      pool,
      async (c) => {
        await c.query('select 1')
        return rawQuery(leaked!, 'select name from accounts').then(
          (x) => names(x.rows),
          (e: unknown) => String(e),
        )
      },
      { tenantId: '2' },
    )
    expect(stolen).not.toEqual(['alice-2', 'carol-2'])
  })

  it('tenant 1 updates tenant 2 rows through its released client', async () => {
    const pool = new pg.Pool({ connectionString: fx.runtimeUrl, max: 1 })
    extra.push(() => pool.end())
    let leaked: pg.PoolClient | undefined
    await withTenantClient(
      pool,
      async (c) => {
        leaked = c
      },
      { tenantId: '1' },
    )
    const before = await fx.foreignRows()
    await withTenantClient(
      pool,
      async (c) => {
        await c.query('select 1')
        await rawQuery(leaked!, "update accounts set name = name || '-pwned'").catch(() => {})
      },
      { tenantId: '2' },
    )
    const after = await fx.foreignRows()
    expect(after).toBe(before)
  })
})

describe('kept client: what a method called on the view hands back', () => {
  // `client.on(...)` returns its receiver. The view bound the client's methods to the pooled
  // client itself, so `on` handed out the pooled client, which no release ever refuses; the
  // same for `client.connection`, pg's wire connection of the client.
  it('withTenantClient: the client `on()` returns is the view, refused after the callback', async () => {
    const pool = new pg.Pool({ connectionString: fx.runtimeUrl, max: 1 })
    extra.push(() => pool.end())
    let kept: pg.PoolClient | undefined
    await withTenantClient(
      pool,
      async (c) => {
        kept = c.on('notice', () => {})
        await kept.query('select 1')
      },
      { tenantId: '1' },
    )
    const stolen = await withTenantClient(
      pool,
      async (c) => {
        await c.query('select 1')
        return kept!.query('select name from accounts').then(
          (x) => names(x.rows),
          (e: unknown) => String(e),
        )
      },
      { tenantId: '2' },
    )
    expect(String(stolen)).toMatch(/released/)
  })

  it('TenantPool: the client `on()` returns is the view, refused after release', async () => {
    const pool = new TenantPool({ pool: new pg.Pool({ connectionString: fx.runtimeUrl, max: 1 }) })
    extra.push(() => pool.end())
    let kept: pg.PoolClient | undefined
    await runWithTenant('1', async () => {
      const c = await pool.connect()
      kept = c.on('notice', () => {})
      await kept.query('select 1')
      c.release()
    })
    const stolen = await runWithTenant('2', async () => {
      const c = await pool.connect()
      try {
        await c.query('begin')
        await c.query('select name from accounts')
        const r = await runWithTenant('1', () =>
          kept!.query('select name from accounts').then(
            (x) => names(x.rows),
            (e: unknown) => String(e),
          ),
        )
        await c.query('commit')
        return r
      } finally {
        c.release()
      }
    })
    expect(String(stolen)).toMatch(/released/)
  })
})

describe('TenantPool: kept client, prototype query', () => {
  it('tenant 1 reads tenant 2 rows in tenant 2 transaction', async () => {
    const pool = new TenantPool({ pool: new pg.Pool({ connectionString: fx.runtimeUrl, max: 1 }) })
    extra.push(() => pool.end())
    let leaked: pg.PoolClient | undefined
    await runWithTenant('1', async () => {
      const c = await pool.connect()
      await c.query('select 1')
      leaked = c
      c.release()
    })
    await expect(leaked!.query('select 1')).rejects.toThrow(/released/)
    const stolen = await runWithTenant('2', async () => {
      const c = await pool.connect()
      try {
        await c.query('begin')
        await c.query('select name from accounts')
        const r = await runWithTenant('1', () =>
          rawQuery(leaked!, 'select name from accounts').then(
            (x) => names(x.rows),
            (e: unknown) => String(e),
          ),
        )
        await c.query('commit')
        return r
      } finally {
        c.release()
      }
    })
    expect(stolen).not.toEqual(['alice-2', 'carol-2'])
  })
})
