import { request } from 'node:http'
import type { AddressInfo } from 'node:net'
import { serve } from '@hono/node-server'
import express from 'express'
import Fastify from 'fastify'
import { Hono } from 'hono'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { runWithTenant } from '../src/context/index.js'
import * as ex from '../src/entries/express.js'
import * as fa from '../src/entries/fastify.js'
import * as ho from '../src/entries/hono.js'
import {
  AuditWriteError,
  createTenancy,
  DatabaseUnavailableError,
  InvalidInputError,
  type Tenant,
  TenantStore,
} from '../src/entries/index.js'
import {
  createJobTenancy,
  JobRejectedError,
  tenantProcessor,
  tenantQueue,
} from '../src/entries/jobs.js'
import type { TenantMiddlewareOptions } from '../src/http/types.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'
import { openBullPair, openTestRedis } from './helpers/redis.js'
import { reject } from './helpers/reject.js'
import { type RlsFixture, setupRlsFixture } from './rls-fixture.js'

/**
 * The tenant store, and every lookup a request or a job makes before its own
 * work, on an exhausted pool: a pool of one connection the test holds checked
 * out (as after a failover or under load). Each lookup fails with
 * DatabaseUnavailableError (pool-timeout) after a small acquireMs: a 503 with
 * Retry-After for a request, a retry for a job; never "no such tenant", and
 * never a wait for good. Cached lookups need no connection.
 */

const ACQUIRE_MS = 100
const citus = inject('testTarget') === 'citus'

let db: TestDatabase
let fx: RlsFixture
const pools: pg.Pool[] = []

beforeAll(async () => {
  db = await createTestDatabase('store_unavailable')
  fx = await setupRlsFixture(db)
  await db.pool.query(
    "insert into tenant_domains (tenant_id, domain, is_primary) values (1, 'one.test', true)",
  )
})
afterAll(async () => {
  await Promise.all(pools.map((p) => p.end().catch(() => {})))
  await fx.cleanup()
})

/** A pool of `max` connections as the owner (the role a store runs on). */
function ownerPool(max = 1): pg.Pool {
  const pool = new pg.Pool({ connectionString: db.url, max })
  pools.push(pool)
  return pool
}

/** Runs `fn` while every connection of `pool` (max 1) is checked out by the test. */
async function whileFull<T>(pool: pg.Pool, fn: () => Promise<T>): Promise<T> {
  const held = await pool.connect()
  try {
    return await fn()
  } finally {
    held.release()
  }
}

function expectPoolTimeout(err: unknown): void {
  expect(err).toBeInstanceOf(DatabaseUnavailableError)
  expect((err as DatabaseUnavailableError).reason).toBe('pool-timeout')
}

describe('TenantStore on an exhausted pool', () => {
  it('every lookup and change fails with DatabaseUnavailableError (pool-timeout), never "no such tenant"', async () => {
    const pool = ownerPool(1)
    const store = new TenantStore({ db: pool, acquireMs: ACQUIRE_MS })
    await whileFull(pool, async () => {
      const calls: Promise<unknown>[] = [
        store.get('1'),
        store.getBySlug('one'),
        store.getByDomain('one.test'),
        store.find('one'),
        store.find('1'),
        store.require('1'),
        store.requireActive('1'),
        store.getBySlug('nobody'), // a miss too: unavailable, not "no such tenant"
        store.list(),
        store.create({ slug: 'three', name: 'Three' }),
        store.suspend('2'),
      ]
      for (const err of await Promise.all(calls.map(reject))) expectPoolTimeout(err)
      // Nothing of it was cached: neither a tenant nor a miss.
      expect(store.cacheSize).toEqual({ found: 0, missing: 0, inFlight: 0 })
    })
    // The connection is back: the same store serves again (the late checkouts were handed back).
    expect((await store.get('1'))?.slug).toBe('one')
    expect((await store.getByDomain('one.test'))?.id).toBe('1')
    expect(await store.getBySlug('nobody')).toBeUndefined()
    expect((await store.list()).map((t) => t.slug)).toEqual(['one', 'two'])
    expect((await store.suspend('2')).status).toBe('suspended')
    expect((await store.activate('2')).status).toBe('active')
    expect(pool.totalCount).toBe(1)
  })

  it('cached lookups answer without a connection while the pool is full', async () => {
    const pool = ownerPool(1)
    const store = new TenantStore({ db: pool, acquireMs: ACQUIRE_MS, ttlMs: 60_000 })
    // Warmed one at a time on a connection already open: each finds it idle, so none can meet
    // the small acquireMs (a new connection, or one lookup waiting for another's, on a slow machine).
    ;(await pool.connect()).release()
    const warm = [
      await store.get('1'),
      await store.getBySlug('one'),
      await store.getByDomain('one.test'),
    ]
    const queries = store.lookupQueries
    await whileFull(pool, async () => {
      const again = await Promise.all([
        store.get('1'),
        store.getBySlug('one'),
        store.getByDomain('one.test'),
        store.find('one'),
      ])
      expect(again.map((t: Tenant | undefined) => t?.id)).toEqual(['1', '1', '1', '1'])
      expect(again.slice(0, 3)).toEqual(warm)
      expect(store.peek('1')?.slug).toBe('one')
      expect(store.lookupQueries).toBe(queries)
      // A tenant not cached yet needs the database: unavailable, not unknown.
      expectPoolTimeout(await reject(store.get('2')))
    })
  })

  it('acquireMs is checked: a whole number of milliseconds, 0 waits forever', () => {
    const pool = ownerPool(1)
    for (const acquireMs of [-1, 1.5, '100', Number.NaN, 86_400_001]) {
      expect(() => new TenantStore({ db: pool, acquireMs: acquireMs as never })).toThrow(
        InvalidInputError,
      )
    }
    expect(() => new TenantStore({ db: pool, acquireMs: 0 })).not.toThrow()
  })
})

interface Answer {
  readonly status: number
  readonly retryAfter: string | undefined
  readonly code: string | undefined
}

/** One GET on a local server (node:http, so a Host header can be sent). */
function get(port: number, headers: Record<string, string>): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', headers, agent: false }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk) => {
        text += chunk
      })
      res.on('end', () => {
        const status = res.statusCode ?? 0
        const retry = res.headers['retry-after']
        resolve({
          status,
          retryAfter: typeof retry === 'string' ? retry : undefined,
          code: status === 200 ? undefined : (JSON.parse(text) as { code?: string }).code,
        })
      })
    })
    req.on('error', reject)
    req.end()
  })
}

/** Express, Fastify and Hono servers with `tenant(options)` in front of a plain handler. */
async function startFrameworks(options: TenantMiddlewareOptions<any>): Promise<{
  /** The three frameworks at once. */
  ask(headers: Record<string, string>): Promise<Answer[]>
  /** The three frameworks one after another. */
  askEach(headers: Record<string, string>): Promise<Answer[]>
  close(): Promise<void>
}> {
  const e = express()
  e.use(ex.tenant(options))
  e.get('/', (_req, res) => res.send('ok'))
  const es = e.listen(0, '127.0.0.1')
  await new Promise((r) => es.once('listening', r))
  const f = Fastify()
  await f.register(fa.tenant(options))
  f.get('/', () => 'ok')
  await f.listen({ port: 0, host: '127.0.0.1' })
  const h = new Hono()
  h.use(ho.tenant(options))
  h.get('/', (c) => c.text('ok'))
  const hs = await new Promise<ReturnType<typeof serve>>((resolve) => {
    const s = serve({ fetch: h.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(s))
  })
  const ports = [es, f.server, hs].map((s) => (s.address() as AddressInfo).port)
  return {
    ask: (headers) => Promise.all(ports.map((port) => get(port, headers))),
    async askEach(headers) {
      const answers: Answer[] = []
      for (const port of ports) answers.push(await get(port, headers))
      return answers
    },
    async close() {
      es.close()
      await f.close()
      hs.close()
    },
  }
}

describe('HTTP: the tenant lookup on an exhausted pool', () => {
  it('Express, Fastify and Hono answer 503 with Retry-After (by header and by host), then serve again', async () => {
    const pool = ownerPool(1)
    const store = new TenantStore({ db: pool, acquireMs: ACQUIRE_MS, ttlMs: 0 })
    const options = { store, resolvers: [ex.fromHost(), ex.fromHeader()] }
    const byHeader = { 'x-tenant-id': '1' }
    const byHost = { host: 'one.test' }
    const unavailable: Answer = { status: 503, retryAfter: '2', code: 'DATABASE_UNAVAILABLE' }
    const ok: Answer = { status: 200, retryAfter: undefined, code: undefined }
    const apps = await startFrameworks(options)
    try {
      await whileFull(pool, async () => {
        expect(await apps.ask(byHeader)).toEqual([unavailable, unavailable, unavailable])
        expect(await apps.ask(byHost)).toEqual([unavailable, unavailable, unavailable])
      })
      // One framework at a time: each lookup finds the connection idle (asked at once, the
      // second and third would wait for the first's query, within the small acquireMs).
      expect(await apps.askEach(byHeader)).toEqual([ok, ok, ok])
      expect(await apps.askEach(byHost)).toEqual([ok, ok, ok])
    } finally {
      await apps.close()
    }
  })
})

describe('jobs: the tenant lookup on an exhausted pool', () => {
  it('a job fails with DatabaseUnavailableError (retryable), not JOB_REJECTED unknown-tenant', async () => {
    const pool = ownerPool(1)
    const jobs = createJobTenancy({
      store: new TenantStore({ db: pool, acquireMs: ACQUIRE_MS }),
      queues: { invoices: {} },
    })
    const envelope = runWithTenant('1', () => jobs.seal('invoices', { n: 1 }))
    const ran: string[] = []
    const run = () =>
      jobs.process(
        'invoices',
        envelope,
        { id: 'j1' } as never,
        async (_payload, info) => {
          ran.push(info.tenantId!)
        },
        async () => {},
      )
    const err = await whileFull(pool, () => reject(run()))
    expectPoolTimeout(err)
    expect(err).not.toBeInstanceOf(JobRejectedError)
    expect(ran).toEqual([])
    await run()
    expect(ran).toEqual(['1'])
  })

  it('BullMQ retries it, and it runs once the pool has a connection again (an unknown tenant is refused as such)', async () => {
    const pool = ownerPool(1)
    const jobs = createJobTenancy({
      store: new TenantStore({ db: pool, acquireMs: ACQUIRE_MS, ttlMs: 0 }),
      queues: { 'store-probe': {} },
    })
    const redis = await openTestRedis()
    const ran: string[] = []
    const failures = new Map<string, string[]>()
    let held: pg.PoolClient | undefined = await pool.connect()
    const bull = openBullPair(
      redis,
      'store-probe',
      tenantProcessor(jobs, 'store-probe', async (_payload: unknown, info) => {
        ran.push(info.tenantId!)
      }),
    )
    const { queue, worker } = bull
    worker.on('error', () => {})
    // A job's last outcome, kept until the test asks for it (it may come before the test asks).
    const outcomes = new Map<string, { promise: Promise<string>; resolve: (s: string) => void }>()
    const outcomeOf = (id: string) => {
      let entry = outcomes.get(id)
      if (!entry) {
        let resolve!: (s: string) => void
        const promise = new Promise<string>((r) => {
          resolve = r
        })
        entry = { promise, resolve }
        outcomes.set(id, entry)
      }
      return entry
    }
    worker.on('failed', (job, err) => {
      const codes = failures.get(String(job?.id)) ?? []
      failures.set(String(job?.id), [...codes, (err as { code?: string }).code ?? err.name])
      // The first failure seen: give the connection back, so the retry finds the pool free.
      held?.release()
      held = undefined
      if (job && job.attemptsMade >= (job.opts.attempts ?? 1)) outcomeOf(job.id!).resolve('failed')
    })
    worker.on('completed', (job) => outcomeOf(job.id!).resolve('completed'))
    const outcome = (id: string) => outcomeOf(id).promise
    try {
      const wrapped = tenantQueue(queue, jobs)
      const opts = { attempts: 3, backoff: { type: 'fixed', delay: 200 } }
      const known = await runWithTenant('1', () => wrapped.add('job', { n: 1 }, opts))
      expect(await outcome(String(known.id))).toBe('completed')
      expect(ran).toEqual(['1'])
      expect(failures.get(String(known.id))).toEqual(['DATABASE_UNAVAILABLE'])
      // Contrast: a tenant that does not exist is refused as unknown on every attempt.
      const unknown = await runWithTenant('999', () => wrapped.add('job', { n: 2 }, opts))
      expect(await outcome(String(unknown.id))).toBe('failed')
      expect(failures.get(String(unknown.id))).toEqual([
        'JOB_REJECTED',
        'JOB_REJECTED',
        'JOB_REJECTED',
      ])
      expect((await queue.getJob(String(unknown.id)))?.failedReason).toMatch(/does not exist/)
      expect(ran).toEqual(['1'])
    } finally {
      held?.release()
      await bull.close()
      await redis.stop()
    }
  })
})

describe('createTenancy: the lookups it makes before a checkout', () => {
  it.skipIf(citus)(
    'hybrid: the serving map lookup on a full admin pool fails with pool-timeout',
    async () => {
      const adminPool = ownerPool(1)
      const tenancy = createTenancy({
        pool: fx.runtimePool(2),
        adminPool,
        tables: ['accounts'],
        hybrid: true,
        timeouts: { acquireMs: ACQUIRE_MS },
      })
      const err = await whileFull(adminPool, () =>
        reject(
          runWithTenant(1, () =>
            tenancy
              .kysely<{ accounts: { id: number } }>()
              .selectFrom('accounts')
              .selectAll()
              .execute(),
          ),
        ),
      )
      expectPoolTimeout(err)
    },
  )

  it('placement: the placement map lookup on a full admin pool fails with pool-timeout', async () => {
    const adminPool = ownerPool(1)
    const tenancy = createTenancy({
      pool: fx.runtimePool(2),
      adminPool,
      tables: ['accounts'],
      placement: { databases: { other: fx.runtimePool(1) }, ttlMs: 0 },
      timeouts: { acquireMs: ACQUIRE_MS },
    })
    const routing = tenancy.options.placement!.routing
    expectPoolTimeout(await whileFull(adminPool, () => reject(routing.poolFor('1'))))
  })

  it('audit: a record on a full audit pool fails the audited work, as AUDIT_FAILED (the statement ran: not "retry later")', async () => {
    const auditPool = ownerPool(1)
    const tenancy = createTenancy({
      pool: fx.runtimePool(2),
      adminPool: ownerPool(2),
      tables: ['accounts'],
      audit: { pool: auditPool },
      timeouts: { acquireMs: ACQUIRE_MS },
    })
    const all = tenancy.allObjects<{ accounts: { tenant_id: string; name: string } }>(
      'store-unavailable test',
    )
    const read = await whileFull(auditPool, () =>
      reject(all.selectFrom('accounts').selectAll().execute()),
    )
    const write = await whileFull(auditPool, () =>
      reject(all.insertInto('accounts').values({ tenant_id: '1', name: 'unaudited' }).execute()),
    )
    for (const err of [read, write]) {
      expect(err).toBeInstanceOf(AuditWriteError)
      expect(err).not.toBeInstanceOf(DatabaseUnavailableError) // a 500, not a 503 to retry
      expect((err as AuditWriteError).code).toBe('AUDIT_FAILED')
      expectPoolTimeout((err as Error).cause)
    }
    // The write ran once: the error says so, and a blind retry would do it twice.
    const { rows } = await db.pool.query(
      `select count(*)::int as n from accounts where name = 'unaudited'`,
    )
    expect(rows[0].n).toBe(1)
    await db.pool.query(`delete from accounts where name = 'unaudited'`)
  })
})
