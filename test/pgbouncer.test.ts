import { type Generated, Kysely, sql } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runWithTenant } from '../src/context/index.js'
import { SessionGuard } from '../src/db/session-guard.js'
import { TenantBindingDialect } from '../src/db/tenant-dialect.js'
import { withTenantClient } from '../src/pg/index.js'
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
