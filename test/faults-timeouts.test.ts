import type { AddressInfo } from 'node:net'
import express from 'express'
import Fastify from 'fastify'
import { Hono } from 'hono'
import { sql } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runWithTenant } from '../src/context/index.js'
import { withTimeouts } from '../src/db/unavailable.js'
import * as ex from '../src/entries/express.js'
import * as fa from '../src/entries/fastify.js'
import * as ho from '../src/entries/hono.js'
import {
  allObjectsPool,
  ConfigError,
  createTenancy,
  DatabaseUnavailableError,
  DatabaseUnreachableError,
  TenantStore,
  tenantPoolOf,
} from '../src/entries/index.js'
import { createJobTenancy } from '../src/entries/jobs.js'
import { TenantPool, withTenantClient } from '../src/entries/pg.js'
import { cli } from './helpers/cli.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'
import { reject } from './helpers/reject.js'
import { type RlsFixture, setupRlsFixture } from './rls-fixture.js'

interface AccountsDB {
  accounts: { id: number; tenant_id: number; name: string }
}

/**
 * Fast failure and per-tenancy timeouts on the shared server (no faults
 * injected here: faults.test.ts does that on a server of its own). Nothing
 * listens on DEAD: the unreachable cases.
 */
const DEAD = 'postgres://nobody:x@127.0.0.1:1/nothing'

let db: TestDatabase
let fx: RlsFixture

beforeAll(async () => {
  db = await createTestDatabase('faults_timeouts')
  fx = await setupRlsFixture(db)
})
afterAll(async () => {
  await fx.cleanup()
})

describe('timeouts per tenancy', () => {
  it('sends statement, lock and idle-in-transaction timeouts with the set_config bind', () => {
    const bind = { text: "select set_config('rowtenancy.tenant_id', $1, true)", values: ['7'] }
    expect(withTimeouts(bind, { statementMs: 5000, lockMs: 100 }).text).toBe(
      "select set_config('rowtenancy.tenant_id', $1, true), " +
        "pg_catalog.set_config('statement_timeout', '5000', true), pg_catalog.set_config('lock_timeout', '100', true)",
    )
    expect(withTimeouts(bind, { acquireMs: 10 })).toBe(bind)
    expect(() =>
      withTimeouts({ text: "set local rowtenancy.tenant_id = '7'" }, { lockMs: 1 }),
    ).toThrow(ConfigError)
  })

  it('refuses bad timeout values with a ConfigError', () => {
    const pool = fx.runtimePool(1)
    for (const timeouts of [{ statementMs: -1 }, { lockMs: 1.5 }, { nope: 1 }, 'fast']) {
      expect(() =>
        createTenancy({ pool, tables: ['accounts'], timeouts: timeouts as never }),
      ).toThrow(ConfigError)
    }
  })

  it('applies them to tenant transactions only: the next checkout carries nothing', async () => {
    const pool = fx.runtimePool(1)
    const tenancy = createTenancy({
      pool,
      tables: ['accounts'],
      binding: 'set_config',
      timeouts: { statementMs: 1234, lockMs: 321, idleInTransactionMs: 4321 },
    })
    const dbk = tenancy.kysely()
    const read = sql<{
      s: string
      l: string
      i: string
    }>`select current_setting('statement_timeout') s, current_setting('lock_timeout') l,
              current_setting('idle_in_transaction_session_timeout') i`
    const lone = (await runWithTenant(1, () => read.execute(dbk))).rows[0]
    expect(lone).toEqual({ s: '1234ms', l: '321ms', i: '4321ms' })
    const inTrx = await runWithTenant(1, () => tenancy.transaction((trx) => read.execute(trx)))
    expect(inTrx.rows[0]).toEqual(lone)
    // The same (only) connection, unbound: the server's defaults again.
    const after = (await pool.query("select current_setting('statement_timeout') s")).rows[0]
    expect(after.s).toBe('0')
  })

  it('with prepareBind, the prepared bind carries the timeouts too', async () => {
    const pool = fx.runtimePool(1)
    const tenancy = createTenancy({
      pool,
      tables: ['accounts'],
      binding: 'set_config',
      prepareBind: true,
      timeouts: { statementMs: 777 },
    })
    for (const id of [1, 2]) {
      const { rows } = await runWithTenant(id, () =>
        sql<{
          s: string
          t: string
        }>`select current_setting('statement_timeout') s, current_setting('rowtenancy.tenant_id') t`.execute(
          tenancy.kysely(),
        ),
      )
      expect(rows[0]).toEqual({ s: '777ms', t: String(id) })
    }
  })

  it('a statement over statementMs fails with DatabaseUnavailableError (timeout), kysely and withTenantClient', async () => {
    const pool = fx.runtimePool(2)
    const tenancy = createTenancy({ pool, tables: ['accounts'], timeouts: { statementMs: 200 } })
    const err = await reject(
      runWithTenant(1, () => sql`select pg_sleep(5)`.execute(tenancy.kysely())),
    )
    expect(err).toBeInstanceOf(DatabaseUnavailableError)
    expect((err as DatabaseUnavailableError).reason).toBe('timeout')
    const raw = await reject(
      withTenantClient(pool, (c) => c.query('select pg_sleep(5)'), {
        tenantId: 1,
        timeouts: { statementMs: 200 },
      }),
    )
    expect((raw as DatabaseUnavailableError).code).toBe('DATABASE_UNAVAILABLE')
  })

  it('PostgreSQL lets raw SQL raise statement_timeout inside the transaction (documented limit)', async () => {
    const pool = fx.runtimePool(1)
    const tenancy = createTenancy({ pool, tables: ['accounts'], timeouts: { statementMs: 200 } })
    const s = await runWithTenant(1, () =>
      tenancy.transaction(async (trx) => {
        await sql`set local statement_timeout = 0`.execute(trx)
        return (
          await sql<{ s: string }>`select current_setting('statement_timeout') s`.execute(trx)
        ).rows[0]!.s
      }),
    )
    expect(s).toBe('0')
  })
})

describe('fast failure', () => {
  it('a full pool fails after acquireMs with reason pool-timeout, not a hang', async () => {
    const pool = fx.runtimePool(1)
    const tenancy = createTenancy({ pool, tables: ['accounts'], timeouts: { acquireMs: 200 } })
    const held = await pool.connect()
    try {
      const started = Date.now()
      const err = await reject(
        runWithTenant(1, () =>
          tenancy.kysely<AccountsDB>().selectFrom('accounts').selectAll().execute(),
        ),
      )
      expect((err as DatabaseUnavailableError).reason).toBe('pool-timeout')
      expect(Date.now() - started).toBeLessThan(10_000)
      const raw = await reject(
        withTenantClient(pool, (c) => c.query('select 1'), {
          tenantId: 1,
          timeouts: { acquireMs: 200 },
        }),
      )
      expect((raw as DatabaseUnavailableError).reason).toBe('pool-timeout')
    } finally {
      held.release()
    }
    // The late checkout was handed back: the pool serves again.
    const rows = await runWithTenant(1, () =>
      tenancy.kysely<AccountsDB>().selectFrom('accounts').selectAll().execute(),
    )
    expect(rows.length).toBe(2)
  })

  it('a connection lost at COMMIT goes back to the pool: the next transaction runs (no leaked client)', async () => {
    // Kysely's controlled transaction keeps its connection after a failed COMMIT until a rollback;
    // each such failure (a server restart or failover under load) used to leak one pooled client
    // for good, until the pool was exhausted and every checkout waited forever.
    const pool = fx.runtimePool(1)
    const tenancy = createTenancy({ pool, tables: ['accounts'], timeouts: { acquireMs: 1000 } })
    for (let round = 0; round < 2; round++) {
      const err = await reject(
        runWithTenant(1, () =>
          tenancy.transaction(async (trx) => {
            const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(trx)
            await db.pool.query('select pg_terminate_backend($1)', [rows[0]!.pid])
          }),
        ),
      )
      expect(err).toBeInstanceOf(DatabaseUnavailableError)
    }
    const rows = await runWithTenant(1, () =>
      tenancy.transaction((trx) =>
        trx
          .selectFrom('accounts' as never)
          .selectAll()
          .execute(),
      ),
    )
    expect(rows.length).toBe(2)
    expect(pool.totalCount).toBe(1)
  })

  it('the ORM pools and allObjects wait at most acquireMs too (pool-timeout), then serve again', async () => {
    const pool = fx.runtimePool(1)
    const adminPool = new pg.Pool({ connectionString: db.url, max: 1 })
    const tenancy = createTenancy({
      pool,
      adminPool,
      tables: ['accounts'],
      timeouts: { acquireMs: 200 },
    })
    const own = new TenantPool({ pool, acquireMs: 200, endPool: false })
    const orm = tenantPoolOf(tenancy)
    await runWithTenant(1, () => orm.query('select 1')) // the start-up role check, before the pool is full
    await runWithTenant(1, () => own.query('select 1'))
    const held = [await pool.connect(), await adminPool.connect()]
    try {
      const waits = [
        runWithTenant(1, () => orm.query('select 1')),
        runWithTenant(1, () => orm.connect()),
        runWithTenant(1, () => own.query('select 1')),
        allObjectsPool(tenancy, 'acquire test').query('select 1'),
        tenancy.allObjects<AccountsDB>('acquire test').selectFrom('accounts').selectAll().execute(),
      ]
      for (const wait of waits) {
        const err = await reject(wait)
        expect(err).toBeInstanceOf(DatabaseUnavailableError)
        expect((err as DatabaseUnavailableError).reason).toBe('pool-timeout')
      }
    } finally {
      for (const client of held) client.release()
    }
    const { rows } = await runWithTenant(1, () =>
      orm.query('select count(*)::int as n from accounts'),
    )
    expect(rows[0].n).toBe(2)
    expect(() => new TenantPool({ pool, acquireMs: -1 })).toThrow(ConfigError)
    await adminPool.end()
  })

  it('an unreachable server: kysely, withTenantClient and the store throw DatabaseUnavailableError', async () => {
    const pool = new pg.Pool({ connectionString: DEAD })
    const tenancy = createTenancy({ pool, tables: ['accounts'], binding: 'set_config' })
    const k = await reject(
      runWithTenant(1, () =>
        tenancy.kysely<AccountsDB>().selectFrom('accounts').selectAll().execute(),
      ),
    )
    expect(k).toBeInstanceOf(DatabaseUnreachableError)
    expect(k).toBeInstanceOf(DatabaseUnavailableError)
    const w = await reject(withTenantClient(pool, (c) => c.query('select 1'), { tenantId: 1 }))
    expect(w).toBeInstanceOf(DatabaseUnavailableError)
    const s = await reject(new TenantStore({ db: pool }).get('1'))
    expect((s as DatabaseUnavailableError).reason).toBe('unreachable')
    await pool.end()
  })

  it('the three middlewares answer 503 problem+json with Retry-After, no stack, no HTML', async () => {
    const pool = new pg.Pool({ connectionString: DEAD })
    const store = new TenantStore({ db: pool })
    const check = async (res: Response) => {
      expect(res.status).toBe(503)
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/)
      expect(res.headers.get('retry-after')).toBe('2')
      const body = (await res.json()) as { code: string }
      // A connect that fails names the server (internally), as the kysely driver's does.
      expect(body.code).toBe('DATABASE_UNREACHABLE')
      expect(JSON.stringify(body)).not.toMatch(/ECONNREFUSED|nobody|at /)
    }
    const e = express()
    e.use(ex.tenant({ store }))
    e.get('/', (_req, res) => res.send('no'))
    const es = e.listen(0, '127.0.0.1')
    await new Promise((r) => es.once('listening', r))
    await check(
      await fetch(`http://127.0.0.1:${(es.address() as AddressInfo).port}/`, {
        headers: { 'x-tenant-id': '1' },
      }),
    )
    es.close()
    const f = Fastify()
    await f.register(fa.tenant({ store }))
    f.get('/', () => 'no')
    const fr = await f.inject({ url: '/', headers: { 'x-tenant-id': '1' } })
    await check(new Response(fr.body, { status: fr.statusCode, headers: fr.headers as never }))
    await f.close()
    const h = new Hono()
    h.use(ho.tenant({ store }))
    h.get('/', (c) => c.text('no'))
    await check(await h.request('/', { headers: { 'x-tenant-id': '1' } }))
    await pool.end()
  })

  it('a handler error that means the database is down becomes 503 in each framework', async () => {
    const store = new TenantStore({ db: fx.runtimePool(1) })
    const dead = new pg.Pool({ connectionString: DEAD })
    const tenancy = createTenancy({ pool: dead, tables: ['accounts'], binding: 'set_config' })
    const query = () => tenancy.kysely<AccountsDB>().selectFrom('accounts').selectAll().execute()
    const e = express()
    e.use(ex.tenant({ store }))
    e.get('/', async (_req, res) => {
      res.json(await query())
    })
    e.use(ex.tenancyErrorHandler())
    const es = e.listen(0, '127.0.0.1')
    await new Promise((r) => es.once('listening', r))
    const er = await fetch(`http://127.0.0.1:${(es.address() as AddressInfo).port}/`, {
      headers: { 'x-tenant-id': '1' },
    })
    es.close()
    const f = Fastify()
    await f.register(fa.tenant({ store }))
    f.setErrorHandler(fa.tenancyErrorHandler())
    f.get('/', () => query())
    const fr = await f.inject({ url: '/', headers: { 'x-tenant-id': '1' } })
    await f.close()
    const h = new Hono()
    h.use(ho.tenant({ store }))
    h.get('/', async (c) => c.json(await query()))
    const hr = await h.request('/', { headers: { 'x-tenant-id': '1' } })
    expect([er.status, fr.statusCode, hr.status]).toEqual([503, 503, 503])
    expect(er.headers.get('retry-after')).toBe('2')
    expect(fr.headers['retry-after']).toBe('2')
    expect(hr.headers.get('content-type')).toMatch(/^application\/problem\+json/)
    await dead.end()
  })

  it('a job whose tenant cannot be looked up fails with DatabaseUnavailableError (the queue retries it), not JOB_REJECTED', async () => {
    const dead = new pg.Pool({ connectionString: DEAD })
    const jobs = createJobTenancy({
      store: new TenantStore({ db: dead }),
      queues: { invoices: {} },
    })
    const envelope = runWithTenant('1', () => jobs.seal('invoices', { n: 1 }))
    let ran = false
    const err = await reject(
      jobs.process(
        'invoices',
        envelope,
        { id: 'j1' } as never,
        async () => {
          ran = true
        },
        async () => {},
      ),
    )
    expect(err).toBeInstanceOf(DatabaseUnavailableError)
    expect(ran).toBe(false)
    await dead.end()
  })

  it('an ORM error wrapping the driver error counts; SQL errors and our own errors do not', () => {
    const orm = new Error('Invalid `prisma.note.findMany()` invocation', {
      cause: Object.assign(new Error('terminating connection'), { code: '57P01' }),
    })
    expect(ex.problemForError(orm)?.status).toBe(503)
    expect(ex.problemForError(Object.assign(new Error('dup'), { code: '23505' }))).toBeUndefined()
    expect(ex.problemForError(new ConfigError('bad', { cause: orm }))?.code).toBe('CONFIG_ERROR')
  })

  it('the CLI prints DATABASE_UNREACHABLE and exits 1, no stack trace', async () => {
    const { code, stderr } = await cli(['tenants', 'list', '--database-url', DEAD])
    expect(code).toBe(1)
    expect(stderr).toMatch(/DATABASE_UNREACHABLE/)
    expect(stderr).not.toMatch(/\n\s+at /)
  })
})
