import { Agent, request, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import type pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { currentTenant, tryCurrentTenant } from '../src/context/index.js'
import {
  fromHeader,
  fromHost,
  fromPath,
  fromSession,
  fromUser,
  type TenantMiddlewareOptions,
  type TenantResolver,
} from '../src/http/index.js'
import { installTenantTables, type Tenant, TenantStore } from '../src/tenants/index.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'

/**
 * The handlers every framework's test app routes to, so that the three apps
 * differ only in framework glue:
 *   GET  /health          -> handlers.health()          (skipped: no tenant)
 *   GET  /public/leak     -> handlers.leak()            (skipped; must fail closed)
 *   GET  /notes           -> handlers.notes(tenant)
 *   GET  /t/:tenant/notes -> handlers.notes(tenant)
 *   POST /notes           -> handlers.echo(tenant, jsonBody)
 */
export interface ScenarioHandlers {
  health(): { tenant: string | null }
  leak(): never
  notes(tenant: Tenant | undefined): Promise<NotesBody>
  echo(tenant: Tenant | undefined, body: unknown): Promise<EchoBody>
}

export interface NotesBody {
  tenant: string | null
  context: string
  notes: { tenant_id: string; body: string }[]
}
export interface EchoBody {
  tenant: string | null
  context: string
  body: unknown
}

/** One framework under test: builds its app on the shared options and handlers. */
export interface HttpAdapter {
  readonly name: string
  start(options: TenantMiddlewareOptions<any>, handlers: ScenarioHandlers): Promise<RunningApp>
}

export interface RunningApp {
  readonly port: number
  close(): Promise<void>
}

/** The port a node:http server listens on. */
export function portOf(server: Server): number {
  return (server.address() as AddressInfo).port
}

interface Reply {
  status: number
  type: string
  json: any
  localPort: number
}

/** A raw node:http request (fetch cannot set Host nor pin one socket). */
function send(
  port: number,
  path: string,
  options: {
    headers?: Record<string, string | string[]>
    method?: string
    body?: string[]
    agent?: Agent
  } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: options.method ?? 'GET',
        headers: options.headers,
        agent: options.agent ?? false,
      },
      (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (chunk) => {
          text += chunk
        })
        res.on('end', () => {
          let json: unknown
          try {
            json = JSON.parse(text)
          } catch {
            json = text
          }
          resolve({
            status: res.statusCode ?? 0,
            type: String(res.headers['content-type'] ?? ''),
            json,
            localPort: req.socket?.localPort ?? 0,
          })
        })
      },
    )
    req.on('error', reject)
    const [first, ...rest] = options.body ?? []
    if (first !== undefined) req.write(first)
    if (rest.length > 0) setTimeout(() => req.end(rest.join('')), 30)
    else req.end()
  })
}

/** mulberry32: a small seeded PRNG, so the random order is the same on every run. */
function seeded(seed: number): () => number {
  let a = seed
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const SLUGS = Array.from({ length: 20 }, (_, i) => `tenant-${String(i + 1).padStart(2, '0')}`)

/** A custom resolver: `?tenant=` in the query string. */
const fromQuery: TenantResolver = {
  source: 'query',
  describe: 'the ?tenant= query parameter',
  fromRequest: true,
  resolve(req) {
    const query = req.url.includes('?') ? req.url.slice(req.url.indexOf('?') + 1) : ''
    const value = new URLSearchParams(query).get('tenant')
    return value === null ? undefined : { idOrSlug: value }
  },
}

/**
 * The scenario every adapter must pass: every resolver, every check and status,
 * spoofing attempts, keep-alive reuse, 200 concurrent requests for 20 tenants,
 * and the lookup cache.
 */
export function describeTenantMiddleware(adapter: HttpAdapter): void {
  describe(`rowtenancy/${adapter.name}`, () => {
    let db: TestDatabase
    let pool: pg.Pool
    let store: TenantStore
    let app: RunningApp
    let handlers: ScenarioHandlers
    const ids = new Map<string, string>()
    const rowsOf = new Map<string, string[]>()
    const users = new Map<string, string[]>()
    const sessions = new Map<string, string>()
    const get = (path: string, headers: Record<string, string | string[]> = {}) =>
      send(app.port, path, { headers })
    const id = (slug: string) => ids.get(slug)!

    beforeAll(async () => {
      db = await createTestDatabase(`http_${adapter.name}`)
      pool = db.pool
      await installTenantTables(pool)
      await pool.query(`create table notes (
        tenant_id bigint not null references tenants (id),
        id bigint generated always as identity,
        body text not null,
        primary key (tenant_id, id))`)
      store = new TenantStore({ db: pool, ttlMs: 60_000 })
      for (const [i, slug] of SLUGS.entries()) {
        const t = await store.create({
          slug,
          name: slug,
          domains: i === 0 ? ['tenant-one.test'] : [],
        })
        ids.set(slug, t.id)
        const bodies = [1, 2, 3].map((n) => `${slug} note ${n}`)
        rowsOf.set(slug, bodies)
        for (const body of bodies) {
          await pool.query('insert into notes (tenant_id, body) values ($1, $2)', [t.id, body])
        }
      }
      for (const slug of ['globex', 'frozen']) {
        const t = await store.create({
          slug,
          name: slug,
          status: slug === 'frozen' ? 'suspended' : 'active',
        })
        ids.set(slug, t.id)
        await pool.query('insert into notes (tenant_id, body) values ($1, $2)', [
          t.id,
          `${slug} secret`,
        ])
      }
      users.set('alice', [id('tenant-01'), id('tenant-02')])
      users.set('bob', [id('tenant-03')])
      users.set('carol', [id('frozen'), id('tenant-04')])
      sessions.set('s5', id('tenant-05'))

      handlers = {
        health: () => ({ tenant: (tryCurrentTenant() as string | undefined) ?? null }),
        leak: () => {
          currentTenant()
          throw new Error('unreachable: currentTenant() must throw outside a tenant')
        },
        async notes(tenant) {
          await sleep(Math.floor(Math.random() * 5))
          const context = String(currentTenant())
          const { rows } = await pool.query(
            'select tenant_id::text, body from notes where tenant_id = $1 order by id',
            [currentTenant()],
          )
          await sleep(1)
          return {
            tenant: tenant?.slug ?? null,
            context: String(currentTenant()) && context,
            notes: rows,
          }
        },
        async echo(tenant, body) {
          await pool.query('select 1')
          return { tenant: tenant?.slug ?? null, context: String(currentTenant()), body }
        },
      }
      const options: TenantMiddlewareOptions = {
        store,
        resolvers: [
          fromHost({ baseDomain: 'example.test' }),
          fromPath(),
          fromHeader(),
          fromHeader({ name: 'X-Tenant-Num', by: 'id' }),
          fromQuery,
          fromSession((req) =>
            sessions.get(/sid=(\w+)/.exec(req.header('cookie') ?? '')?.[1] ?? ''),
          ),
          fromUser(),
        ],
        memberships: (req) => {
          const auth = req.header('authorization')
          if (!auth?.startsWith('Bearer ')) return undefined
          return users.get(auth.slice(7)) ?? []
        },
        skip: ['/health', '/public/*'],
      }
      app = await adapter.start(options, handlers)
    })
    afterAll(async () => {
      await app?.close()
      await db?.drop()
    })

    const expectNotes = (reply: Reply, slug: string) => {
      expect(reply.status, JSON.stringify(reply.json)).toBe(200)
      expect(reply.json.tenant).toBe(slug)
      expect(reply.json.context).toBe(id(slug))
      expect(reply.json.notes.map((n: { body: string }) => n.body)).toEqual(rowsOf.get(slug))
      expect(new Set(reply.json.notes.map((n: { tenant_id: string }) => n.tenant_id))).toEqual(
        new Set([id(slug)]),
      )
    }
    const expectProblem = (reply: Reply, status: number, code: string) => {
      expect(reply.status, JSON.stringify(reply.json)).toBe(status)
      expect(reply.type).toMatch(/^application\/problem\+json/)
      expect(reply.json).toMatchObject({ status, code })
      expect(typeof reply.json.detail).toBe('string')
    }

    describe('resolvers', () => {
      it('header X-Tenant-ID by id and by slug', async () => {
        expectNotes(await get('/notes', { 'x-tenant-id': 'tenant-02' }), 'tenant-02')
        expectNotes(await get('/notes', { 'X-Tenant-ID': id('tenant-02') }), 'tenant-02')
      })
      it('a header with a configured name, by id only', async () => {
        expectNotes(await get('/notes', { 'x-tenant-num': id('tenant-06') }), 'tenant-06')
      })
      it('host: a row in tenant_domains (port ignored) and a subdomain of the base domain', async () => {
        expectNotes(await get('/notes', { host: 'tenant-one.test:8080' }), 'tenant-01')
        expectNotes(await get('/notes', { host: 'TENANT-08.example.test' }), 'tenant-08')
      })
      it('host: the base domain, www and unrelated hosts name no tenant', async () => {
        for (const host of ['example.test', 'www.example.test', 'api.other.test', '127.0.0.1']) {
          expectProblem(await get('/notes', { host }), 400, 'MISSING_TENANT')
        }
      })
      it('path prefix /t/:tenant/ by slug and by id', async () => {
        expectNotes(await get('/t/tenant-07/notes'), 'tenant-07')
        expectNotes(await get(`/t/${id('tenant-07')}/notes`), 'tenant-07')
      })
      it('session callback', async () => {
        expectNotes(await get('/notes', { cookie: 'a=1; sid=s5' }), 'tenant-05')
      })
      it('authenticated user: their only tenant; several tenants need a choice', async () => {
        expectNotes(await get('/notes', { authorization: 'Bearer bob' }), 'tenant-03')
        expectProblem(await get('/notes', { authorization: 'Bearer alice' }), 400, 'MISSING_TENANT')
        expectNotes(
          await get('/notes', { authorization: 'Bearer alice', 'x-tenant-id': 'tenant-02' }),
          'tenant-02',
        )
      })
      it('a custom resolver (query parameter)', async () => {
        expectNotes(await get('/notes?tenant=tenant-10'), 'tenant-10')
      })
      it('first match wins over the session and user fallbacks', async () => {
        expectNotes(
          await get('/notes', { cookie: 'sid=s5', 'x-tenant-id': 'tenant-09' }),
          'tenant-09',
        )
      })
      it('no tenant named: 400 MISSING_TENANT telling how to name one', async () => {
        const reply = await get('/notes')
        expectProblem(reply, 400, 'MISSING_TENANT')
        expect(reply.json.detail).toContain('X-Tenant-ID')
      })
    })

    describe('checks', () => {
      it('unknown tenant: 404 TENANT_NOT_FOUND without echoing the value', async () => {
        const reply = await get('/notes', { 'x-tenant-id': 'no-such-tenant' })
        expectProblem(reply, 404, 'TENANT_NOT_FOUND')
        expect(JSON.stringify(reply.json)).not.toContain('no-such-tenant')
        expectProblem(await get('/notes', { 'x-tenant-id': '987654321' }), 404, 'TENANT_NOT_FOUND')
        expectProblem(await get('/notes', { host: 'nobody.example.test' }), 404, 'TENANT_NOT_FOUND')
      })
      it('suspended tenant: 403 TENANT_SUSPENDED, also for its own member', async () => {
        expectProblem(await get('/notes', { 'x-tenant-id': 'frozen' }), 403, 'TENANT_SUSPENDED')
        expectProblem(
          await get('/notes', { authorization: 'Bearer carol', 'x-tenant-id': 'frozen' }),
          403,
          'TENANT_SUSPENDED',
        )
      })
      it('suspension takes effect at once through the store (cache invalidated)', async () => {
        expectNotes(await get('/notes', { 'x-tenant-id': 'tenant-20' }), 'tenant-20')
        await store.suspend(id('tenant-20'))
        try {
          expectProblem(
            await get('/notes', { 'x-tenant-id': 'tenant-20' }),
            403,
            'TENANT_SUSPENDED',
          )
        } finally {
          await store.activate(id('tenant-20'))
        }
        expectNotes(await get('/notes', { 'x-tenant-id': 'tenant-20' }), 'tenant-20')
      })
      it('malformed values get 400 INVALID_TENANT_ID before any lookup', async () => {
        const before = store.lookupQueries
        const bad: Record<string, string | string[]>[] = [
          { 'x-tenant-num': 'abc' }, // wrong id type (bigint)
          { 'x-tenant-num': '9223372036854775808' }, // out of bigint range
          { 'x-tenant-id': 'x'.repeat(300) }, // over-long
          { 'x-tenant-id': 'tenant\t01' }, // control character
          { 'x-tenant-id': 'Acme Corp!' }, // neither id nor slug
          { 'x-tenant-id': ['tenant-01', 'tenant-02'] }, // repeated header arrives joined
        ]
        for (const headers of bad) {
          expectProblem(await get('/notes', headers), 400, 'INVALID_TENANT_ID')
        }
        expectProblem(await get('/t/%00/notes'), 400, 'INVALID_TENANT_ID')
        // Fastify's router answers malformed percent-encoding (FST_ERR_BAD_URL, 400) and
        // over-long params (FST_ERR_MAX_PARAM_LENGTH, 414) itself, before any hook runs;
        // the others reach the middleware. Refused either way.
        for (const path of ['/t/%E0%A4%A/notes', `/t/${'a'.repeat(300)}/notes`]) {
          const reply = await get(path)
          if (adapter.name === 'fastify') expect([400, 414]).toContain(reply.status)
          else expectProblem(reply, 400, 'INVALID_TENANT_ID')
        }
        expect(store.lookupQueries).toBe(before)
      })
      it('skipped routes run without a tenant, even when one is named', async () => {
        const reply = await get('/health', { 'x-tenant-id': 'tenant-01' })
        expect(reply.status).toBe(200)
        expect(reply.json).toEqual({ tenant: null })
        expect((await get('/health', { 'x-tenant-id': 'x'.repeat(300) })).status).toBe(200)
      })
      it('fails closed: currentTenant() on a skipped route is an error, never a tenant', async () => {
        const reply = await get('/public/leak', { 'x-tenant-id': 'tenant-01' })
        expect(reply.status).toBeGreaterThanOrEqual(400)
        expect(JSON.stringify(reply.json)).not.toContain('tenant-01 note')
      })
      it('a JSON body sent in two delayed chunks is read inside the tenant scope', async () => {
        const reply = await send(app.port, '/notes', {
          method: 'POST',
          headers: { 'x-tenant-id': 'tenant-11', 'content-type': 'application/json' },
          body: ['{"hello":', '"world"}'],
        })
        expect(reply.status, JSON.stringify(reply.json)).toBe(200)
        expect(reply.json).toEqual({
          tenant: 'tenant-11',
          context: id('tenant-11'),
          body: { hello: 'world' },
        })
      })
    })

    describe('spoofing', () => {
      it('a header naming a tenant the user does not belong to: 403', async () => {
        expectProblem(
          await get('/notes', { authorization: 'Bearer bob', 'x-tenant-id': 'tenant-01' }),
          403,
          'TENANT_FORBIDDEN',
        )
        expectProblem(
          await get('/t/globex/notes', { authorization: 'Bearer bob' }),
          403,
          'TENANT_FORBIDDEN',
        )
        expectProblem(
          await get('/notes', { authorization: 'Bearer bob', host: 'tenant-one.test' }),
          403,
          'TENANT_FORBIDDEN',
        )
        expectProblem(
          await get('/notes', { authorization: 'Bearer nobody', 'x-tenant-id': 'tenant-03' }),
          403,
          'TENANT_FORBIDDEN',
        )
      })
      it('outside their memberships, existing, missing and suspended tenants look the same', async () => {
        const probe = (value: string) =>
          get('/notes', { authorization: 'Bearer bob', 'x-tenant-id': value })
        const [existing, missing, suspended, byId] = await Promise.all([
          probe('globex'),
          probe('no-such-tenant'),
          probe('frozen'),
          probe('987654321'),
        ])
        for (const reply of [existing, missing, suspended, byId]) {
          expectProblem(reply, 403, 'TENANT_FORBIDDEN')
          expect(reply.json).toEqual(existing.json)
        }
      })
      it('a stale session for a tenant the user left: 403', async () => {
        expectProblem(
          await get('/notes', { authorization: 'Bearer bob', cookie: 'sid=s5' }),
          403,
          'TENANT_FORBIDDEN',
        )
      })
      it('a host for one tenant plus a header for another: 403, whether or not it exists', async () => {
        const host = { host: 'tenant-one.test' }
        const other = await get('/notes', { ...host, 'x-tenant-id': 'tenant-02' })
        const missing = await get('/notes', { ...host, 'x-tenant-id': 'no-such-tenant' })
        expectProblem(other, 403, 'TENANT_FORBIDDEN')
        expect(missing.json).toEqual(other.json)
        expectProblem(
          await get('/notes', {
            ...host,
            authorization: 'Bearer alice',
            'x-tenant-id': 'tenant-02',
          }),
          403,
          'TENANT_FORBIDDEN',
        )
        expectProblem(await get('/t/tenant-02/notes', host), 403, 'TENANT_FORBIDDEN')
        expectProblem(
          await get('/notes', { 'x-tenant-id': 'tenant-02', 'x-tenant-num': id('tenant-03') }),
          403,
          'TENANT_FORBIDDEN',
        )
      })
      it('the same tenant named twice (host by domain, header by id) is fine', async () => {
        expectNotes(
          await get('/notes', { host: 'tenant-one.test', 'x-tenant-id': id('tenant-01') }),
          'tenant-01',
        )
      })
    })

    it('fails closed when the tenant lookup fails: 500, and the handler never runs', async () => {
      let reached = 0
      const broken = new TenantStore({
        db: {
          query: async () => {
            throw new Error('connection refused (simulated)')
          },
        },
      })
      const counting: ScenarioHandlers = {
        ...handlers,
        notes: (tenant) => {
          reached++
          return handlers.notes(tenant)
        },
      }
      const down = await adapter.start({ store: broken, skip: ['/health'] }, counting)
      try {
        const reply = await send(down.port, '/notes', { headers: { 'x-tenant-id': 'tenant-01' } })
        expect(reply.status).toBe(500)
        expect(reached).toBe(0)
        expect((await send(down.port, '/health')).status).toBe(200)
      } finally {
        await down.close()
      }
    })

    it('keep-alive: requests on one socket never inherit the previous tenant', async () => {
      const agent = new Agent({ keepAlive: true, maxSockets: 1 })
      try {
        const on = (path: string, headers: Record<string, string> = {}) =>
          send(app.port, path, { headers, agent })
        const a = await on('/notes', { 'x-tenant-id': 'tenant-12' })
        const b = await on('/notes', { 'x-tenant-id': 'tenant-13' })
        const health = await on('/health')
        const leak = await on('/public/leak')
        const refused = await on('/notes')
        const c = await on('/notes', { 'x-tenant-id': 'tenant-12' })
        expectNotes(a, 'tenant-12')
        expectNotes(b, 'tenant-13')
        expect(health.json).toEqual({ tenant: null })
        expect(leak.status).toBeGreaterThanOrEqual(400)
        expectProblem(refused, 400, 'MISSING_TENANT')
        expectNotes(c, 'tenant-12')
        const sockets = new Set([a, b, health, refused, c].map((r) => r.localPort))
        expect(sockets.size).toBe(1)
      } finally {
        agent.destroy()
      }
    })

    it('200 concurrent requests for 20 tenants in random order each see only their own rows', async () => {
      const random = seeded(4)
      const requests = Array.from({ length: 200 }, (_, i) => SLUGS[i % 20]!)
      for (let i = requests.length - 1; i > 0; i--) {
        const j = Math.floor(random() * (i + 1))
        ;[requests[i], requests[j]] = [requests[j]!, requests[i]!]
      }
      const base = `http://127.0.0.1:${app.port}`
      const replies = await Promise.all(
        requests.map(async (slug, i) => {
          const how = i % 3
          const res =
            how === 0
              ? await fetch(`${base}/notes`, { headers: { 'x-tenant-id': slug } })
              : how === 1
                ? await fetch(`${base}/t/${slug}/notes`)
                : await fetch(`${base}/notes`, { headers: { 'x-tenant-num': id(slug) } })
          return { slug, status: res.status, json: (await res.json()) as NotesBody }
        }),
      )
      for (const { slug, status, json } of replies) {
        expect(status).toBe(200)
        expect(json.tenant).toBe(slug)
        expect(json.context).toBe(id(slug))
        expect(json.notes.map((n) => n.body)).toEqual(rowsOf.get(slug))
      }
    })

    it('a burst of 50 requests for one tenant costs one lookup per TTL', async () => {
      store.invalidate()
      const before = store.lookupQueries
      const base = `http://127.0.0.1:${app.port}`
      const burst = () =>
        Promise.all(
          Array.from({ length: 50 }, () =>
            fetch(`${base}/notes`, { headers: { 'x-tenant-id': 'tenant-14' } }).then(
              (r) => r.status,
            ),
          ),
        )
      expect(new Set(await burst())).toEqual(new Set([200]))
      expect(store.lookupQueries - before).toBe(1)
      expect(new Set(await burst())).toEqual(new Set([200]))
      expect(store.lookupQueries - before).toBe(1)
    })
  })
}
