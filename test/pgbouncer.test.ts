import { type Generated, Kysely, sql } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runWithTenant } from '../src/context/index.js'
import { BIND_STATEMENT_NAME, SessionGuard } from '../src/db/session-guard.js'
import { TenantBindingDialect } from '../src/db/tenant-dialect.js'
import { TenantPool, withTenantClient } from '../src/pg/index.js'
import { createTestDatabase, serverUrl, type TestDatabase } from './helpers/db.js'
import { type PgBouncer, pgbouncerBinary, startPgBouncer } from './helpers/pgbouncer.js'
import { type RlsFixture, setupRlsFixture } from './rls-fixture.js'

/**
 * The default binding behind a real PgBouncer in transaction pooling mode, with
 * two server connections shared by several clients, so a client's next
 * transaction certainly lands on another server session: the prepared bind is
 * lost there, the pool falls back to the unnamed bind by itself, each statement
 * runs exactly once, and every tenant sees only its rows.
 */
interface DB {
  accounts: { tenant_id: string; id: Generated<string>; name: string }
}

const bin = pgbouncerBinary()
if (!bin)
  console.warn(
    'pgbouncer is not installed (run .ci/pgbouncer.sh): test/pgbouncer.test.ts is SKIPPED',
  )

let db: TestDatabase
let fx: RlsFixture
let bouncer: PgBouncer
const pools: pg.Pool[] = []
const instances: Kysely<DB>[] = []

function runtimePool(max: number): pg.Pool {
  const url = new URL(fx.runtimeUrl)
  url.port = String(bouncer.port)
  url.hostname = '127.0.0.1'
  const pool = new pg.Pool({ connectionString: url.toString(), max })
  pool.on('error', () => {})
  pools.push(pool)
  return pool
}

const names = (rows: { name: string }[]) => rows.map((r) => r.name).sort()

describe.skipIf(!bin)('through PgBouncer (transaction pooling, 2 server connections)', () => {
  beforeAll(async () => {
    db = await createTestDatabase('pgbouncer')
    fx = await setupRlsFixture(db)
    const runtime = new URL(fx.runtimeUrl)
    bouncer = await startPgBouncer(serverUrl(), {
      poolSize: 2,
      users: { [decodeURIComponent(runtime.username)]: decodeURIComponent(runtime.password) },
    })
  })
  afterAll(async () => {
    await Promise.all(instances.map((k) => k.destroy().catch(() => {})))
    await Promise.all(pools.map((p) => p.end().catch(() => {})))
    await bouncer?.stop()
    await fx?.cleanup()
  })

  it('the server session changes under a client: the prepared bind falls back, the INSERT runs once, isolation holds', async () => {
    const pool = runtimePool(1)
    SessionGuard.for(pool).assumeDirect() // a pooler the probe cannot see: the fall-back's case
    const k = new Kysely<DB>({ dialect: new TenantBindingDialect({ pool, adminPool: db.pool }) })
    instances.push(k)
    const holder = runtimePool(1)
    const pid = sql<{ pid: number }>`select pg_backend_pid() as pid`
    // 1. prepares the bind on server session S1
    const first = await runWithTenant(1, () => k.selectFrom('accounts').select('name').execute())
    expect(names(first)).toEqual(['a1', 'a2'])
    expect(SessionGuard.for(pool).prepares).toBe(true)
    // 2. another client holds S1 in an open transaction: the next transaction of
    //    `pool` gets S2, which has no rowtenancy_bind
    const held = await holder.connect()
    await held.query('begin')
    const heldPid = (await held.query('select pg_backend_pid() as pid')).rows[0].pid
    try {
      const row = await runWithTenant(1, () =>
        k
          .insertInto('accounts')
          .values({ tenant_id: '1', name: 'via-bouncer' })
          .returning('tenant_id')
          .executeTakeFirstOrThrow(),
      )
      expect(row.tenant_id).toBe('1')
      const other = (await runWithTenant(1, () => pid.execute(k))).rows[0]!.pid
      expect(other).not.toBe(heldPid)
      expect(SessionGuard.for(pool).prepares).toBe(false) // fell back to the unnamed bind
    } finally {
      await held.query('rollback')
      held.release()
    }
    const { rows } = await db.pool.query(
      `select count(*)::int as n from accounts where name = 'via-bouncer'`,
    )
    expect(rows[0].n).toBe(1)
    // 3. many units over the shared sessions: each sees its own rows only
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        runWithTenant((i % 2) + 1, async () => [
          (i % 2) + 1,
          names(await k.selectFrom('accounts').select('name').execute()),
        ]),
      ),
    )
    for (const [t, got] of results) {
      expect(got).toEqual(t === 1 ? ['a1', 'a2', 'via-bouncer'] : ['b1'])
    }
    await db.pool.query(`delete from accounts where name = 'via-bouncer'`)
  })

  /** Both server sessions start without the bind statement (earlier tests prepared it). */
  async function forgetPrepared(): Promise<void> {
    const both = runtimePool(2)
    const pair = await Promise.all([both.connect(), both.connect()])
    for (const c of pair) await c.query('begin')
    for (const c of pair) await c.query('deallocate all')
    for (const c of pair) {
      await c.query('commit')
      c.release()
    }
  }

  /** The runtime role's transactions left open on a server session. */
  async function openTransactions(): Promise<number> {
    const runtime = decodeURIComponent(new URL(fx.runtimeUrl).username)
    const { rows } = await db.pool.query(
      `select count(*)::int as n from pg_stat_activity where usename = $1 and state like 'idle in transaction%'`,
      [runtime],
    )
    return rows[0].n
  }

  /**
   * A TenantPool client (as ORMs use it) sends BEGIN on its own and the bind with
   * the transaction's next statement. `step` runs on a client whose next
   * transaction lands on a server session without the prepared bind: the session
   * that parsed it is held by another client.
   */
  async function onLostBind<T>(
    step: (c: pg.PoolClient) => Promise<T>,
  ): Promise<{ result: T; prepares: boolean; tp: TenantPool }> {
    await forgetPrepared()
    const inner = runtimePool(1)
    SessionGuard.for(inner).assumeDirect() // a pooler the probe cannot see: the fall-back's case
    const tp = new TenantPool({ pool: inner, endPool: false })
    const holder = runtimePool(1)
    return runWithTenant(1, async () => {
      const c = await tp.connect()
      try {
        // A lone statement an ORM sends (session-neutral: no reset after it) parses the bind.
        await c.query('select name from accounts')
        expect(SessionGuard.for(inner).prepares).toBe(true)
        const held = await holder.connect()
        try {
          await held.query('begin')
          const { rows } = await held.query('select name from pg_prepared_statements')
          expect(rows).toEqual([{ name: BIND_STATEMENT_NAME }])
          const result = await step(c)
          return { result, prepares: SessionGuard.for(inner).prepares, tp }
        } finally {
          await held.query('rollback')
          held.release()
        }
      } finally {
        c.release()
      }
    })
  }

  const countNamed = async (name: string) =>
    (await db.pool.query('select count(*)::int as n from accounts where name = $1', [name])).rows[0]
      .n

  it('TenantPool: the bind is lost inside a transaction BEGIN opened: rolled back, opened again, the INSERT runs once', async () => {
    const row = await onLostBind(async (c) => {
      await c.query('begin')
      const { rows } = await c.query(
        `insert into accounts (tenant_id, name) values ('1', 'tx-bouncer') returning tenant_id`,
      )
      const seen = await c.query('select name from accounts')
      await c.query('commit')
      return { tenant: rows[0].tenant_id, seen: names(seen.rows) }
    })
    expect(row).toMatchObject({
      result: { tenant: '1', seen: ['a1', 'a2', 'tx-bouncer'] },
      prepares: false, // fell back to the unnamed bind
    })
    expect(await countNamed('tx-bouncer')).toBe(1)
    await db.pool.query(`delete from accounts where name = 'tx-bouncer'`)
  })

  it('TenantPool: the bind is lost after SET TRANSACTION (it rides after it): the isolation level and the tenant hold', async () => {
    const got = await onLostBind(async (c) => {
      await c.query('START TRANSACTION')
      await c.query('SET TRANSACTION ISOLATION LEVEL SERIALIZABLE')
      await c.query(`insert into accounts (tenant_id, name) values ('1', 'ser-bouncer')`)
      const { rows } = await c.query(
        `select current_setting('transaction_isolation') as iso, count(*)::int as n from accounts`,
      )
      await c.query('COMMIT')
      return rows[0]
    })
    expect(got).toMatchObject({ result: { iso: 'serializable', n: 3 }, prepares: false })
    expect(await countNamed('ser-bouncer')).toBe(1)
    await db.pool.query(`delete from accounts where name = 'ser-bouncer'`)
  })

  it('TenantPool: a multi-statement text first in a transaction on another server session runs once, bound', async () => {
    const got = await onLostBind(async (c) => {
      await c.query('begin isolation level repeatable read')
      await c.query(
        `insert into accounts (tenant_id, name) values ('1', 'multi-bouncer'); select 1`,
      )
      const { rows } = await c.query(
        `select current_setting('transaction_isolation') as iso, count(*)::int as n from accounts`,
      )
      await c.query('commit')
      return rows[0]
    })
    // The bind goes alone ahead of the text, as the pipeline's main statement: always unnamed.
    expect(got.result).toEqual({ iso: 'repeatable read', n: 3 })
    expect(await countNamed('multi-bouncer')).toBe(1)
    await db.pool.query(`delete from accounts where name = 'multi-bouncer'`)
  })

  it('TenantPool: the bind is lost under statements sent at once in a transaction: the error stands, nothing runs twice, the retry commits once, the client goes back clean', async () => {
    const { result, prepares, tp } = await onLostBind(async (c) => {
      await c.query('begin')
      const sent = [
        c.query(`insert into accounts (tenant_id, name) values ('1', 'race-1')`),
        c.query(`insert into accounts (tenant_id, name) values ('1', 'race-2')`),
      ]
      const first = await Promise.allSettled(sent)
      await c.query('rollback') // the ORM gives the transaction up, then runs it again
      await c.query('begin')
      await c.query(`insert into accounts (tenant_id, name) values ('1', 'race-1')`)
      await c.query(`insert into accounts (tenant_id, name) values ('1', 'race-2')`)
      await c.query('commit')
      return first.map((r) => r.status)
    })
    expect(result).toEqual(['rejected', 'rejected'])
    expect(prepares).toBe(false)
    expect([await countNamed('race-1'), await countNamed('race-2')]).toEqual([1, 1])
    // No transaction left open on a server session; the next checkout, with no tenant, sees nothing.
    expect(await openTransactions()).toBe(0)
    const next = await tp.connect()
    try {
      const { rows } = await next.query(
        `select current_setting('rowtenancy.tenant_id', true) as t, (select count(*)::int from accounts) as n`,
      )
      expect(rows[0]).toEqual({ t: '', n: 0 })
    } finally {
      next.release()
    }
    await db.pool.query(`delete from accounts where name in ('race-1', 'race-2')`)
  })

  it('Kysely: the bind is lost under statements sent at once in db.transaction(): each runs once, in one transaction', async () => {
    await forgetPrepared()
    const pool = runtimePool(1)
    SessionGuard.for(pool).assumeDirect()
    const k = new Kysely<DB>({ dialect: new TenantBindingDialect({ pool, adminPool: db.pool }) })
    instances.push(k)
    const holder = runtimePool(1)
    const insertBoth = () =>
      k
        .transaction()
        .execute((trx) =>
          Promise.all(
            ['k-race-1', 'k-race-2'].map((name) =>
              trx.insertInto('accounts').values({ tenant_id: '1', name }).execute(),
            ),
          ),
        )
    const first = await runWithTenant(1, async () => {
      await k.selectFrom('accounts').select('name').execute() // parses the bind
      const held = await holder.connect()
      try {
        await held.query('begin')
        const { rows } = await held.query('select name from pg_prepared_statements')
        expect(rows).toEqual([{ name: BIND_STATEMENT_NAME }])
        return await insertBoth().then(
          () => 'committed',
          () => 'failed',
        )
      } finally {
        await held.query('rollback')
        held.release()
      }
    })
    // Kysely runs a transaction's statements one at a time: the first is sent again alone.
    expect(first).toBe('committed')
    expect(SessionGuard.for(pool).prepares).toBe(false)
    expect([await countNamed('k-race-1'), await countNamed('k-race-2')]).toEqual([1, 1])
    expect(await openTransactions()).toBe(0) // no transaction left over
    await db.pool.query(`delete from accounts where name like 'k-race-%'`)
  })

  it('the guard sees the pooler (the backend pid is not the one the connection announced): unnamed bind, the reset before every unit', async () => {
    const inner = runtimePool(1)
    const tp = new TenantPool({ pool: inner, endPool: false })
    await runWithTenant(1, () => tp.query('select name from accounts'))
    expect(SessionGuard.for(inner).pooled).toBe(true)
    expect(SessionGuard.for(inner).prepares).toBe(false)
    await tp.end()
  })

  /**
   * Hostile SQL from another client of the pooler leaves state on a server
   * session (session-level tenant, a replaced rowtenancy_bind, a search_path);
   * the victim's next units land on that session.
   */
  it.each([
    ['a session-level tenant', "select set_config('rowtenancy.tenant_id', '2', false)"],
    [
      'a replaced rowtenancy_bind',
      `deallocate all; prepare ${BIND_STATEMENT_NAME}(text) as select pg_catalog.set_config('rowtenancy.tenant_id', '2', true)`,
    ],
    ['a search_path without the tables', "select set_config('search_path', 'pg_catalog', false)"],
  ])(
    'through the pooler, %s planted by another client reaches no unit of rowtenancy',
    async (_label, attack) => {
      const attacker = runtimePool(1)
      const victimInner = runtimePool(1)
      const victim = new TenantPool({ pool: victimInner, endPool: false })
      await runWithTenant(1, () => victim.query('select name from accounts')) // warm: probe answered
      const k = new Kysely<DB>({
        dialect: new TenantBindingDialect({ pool: victimInner, adminPool: db.pool }),
      })
      instances.push(k)
      for (let round = 0; round < 3; round++) {
        // plain client of the same role through the same pooler: its state stays on a server session
        await attacker.query(`select 1; ${attack}`)
        for (let i = 0; i < 2; i++) {
          const t1 = await runWithTenant(1, () => victim.query('select name from accounts'))
          expect(names(t1.rows)).toEqual(['a1', 'a2'])
          const none = await victim.query('select name from accounts')
          expect(none.rows).toEqual([])
          expect(
            names(await runWithTenant(1, () => k.selectFrom('accounts').select('name').execute())),
          ).toEqual(['a1', 'a2'])
        }
      }
      await victim.end()
    },
  )

  it('raw SQL that sets a session-level tenant through rowtenancy leaves no server session bound', async () => {
    const pool = runtimePool(4)
    const k = new Kysely<DB>({ dialect: new TenantBindingDialect({ pool, adminPool: db.pool }) })
    instances.push(k)
    await Promise.all(
      Array.from({ length: 8 }, () =>
        runWithTenant(2, () =>
          sql`select set_config('rowtenancy.tenant_id', '2', false)`.execute(k),
        ),
      ),
    )
    await Promise.all(
      Array.from({ length: 4 }, () =>
        withTenantClient(
          pool,
          (c) => c.query(`select set_config('rowtenancy.tenant_id', '2', false)`),
          { tenantId: 2 },
        ),
      ),
    )
    // plain queries from fresh clients over both server sessions: nothing bound
    const plain = runtimePool(4)
    const seen = await Promise.all(
      Array.from({ length: 8 }, async () => {
        const c = await plain.connect()
        try {
          const { rows } = await c.query(
            `select current_setting('rowtenancy.tenant_id', true) as t, (select count(*)::int from accounts) as n`,
          )
          return rows[0]
        } finally {
          c.release()
        }
      }),
    )
    for (const s of seen) expect(s).toEqual({ t: '', n: 0 })
  })
})
