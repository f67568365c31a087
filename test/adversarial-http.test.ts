/**
 * Hostile code: HTTP middleware spoofing and context carry-over.
 */
import { request, type Server } from 'node:http'
import { type AddressInfo, connect } from 'node:net'
import { serve } from '@hono/node-server'
import express from 'express'
import Fastify from 'fastify'
import { Hono } from 'hono'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { clearCurrentTenant, setCurrentTenant, tryCurrentTenant } from '../src/context/index.js'
import { tenant as expressTenant } from '../src/entries/express.js'
import { tenant as fastifyTenant } from '../src/entries/fastify.js'
import { tenant as honoTenant } from '../src/entries/hono.js'
import { fromHeader, fromHost, fromPath, type TenantMiddlewareOptions } from '../src/http/index.js'
import { installTenantTables, TenantStore } from '../src/tenants/index.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'

let db: TestDatabase
let store: TenantStore
const ids: Record<string, string> = {}

function send(port: number, path: string, headers: Record<string, string | string[]> = {}) {
  return new Promise<{ status: number; json: any }>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c) => (text += c))
      res.on('end', () => {
        let json: any
        try {
          json = JSON.parse(text)
        } catch {
          json = text
        }
        resolve({ status: res.statusCode ?? 0, json })
      })
    })
    req.on('error', reject)
    req.end()
  })
}

/** Sends a request written by hand (headers Node's client would not send twice); the status. */
function sendRaw(port: number, head: string) {
  return new Promise<number>((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () =>
      socket.write(`${head}Connection: close\r\n\r\n`),
    )
    let text = ''
    socket.setEncoding('utf8')
    socket.on('data', (c) => (text += c))
    socket.on('end', () => resolve(Number(text.split(' ')[1])))
    socket.on('error', reject)
  })
}

beforeAll(async () => {
  db = await createTestDatabase('adv_http')
  await installTenantTables(db.pool)
  store = new TenantStore({ db: db.pool, ttlMs: 60_000 })
  ids.alpha = (await store.create({ slug: 'alpha', name: 'a', domains: ['alpha.shop'] })).id
  ids.beta = (await store.create({ slug: 'beta', name: 'b', domains: ['bücher.test'] })).id
  ids.gamma = (await store.create({ slug: 'gamma', name: 'g' })).id
  // gamma adds a custom domain that is another tenant's subdomain of the base domain
  await store.addDomain(ids.gamma, 'alpha.example.test').catch(() => {})
}, 60_000)

afterAll(async () => {
  await db?.drop()
})

const users: Record<string, string[]> = {}
const opts = (extra: Partial<TenantMiddlewareOptions<any>> = {}): TenantMiddlewareOptions<any> => ({
  store,
  resolvers: [fromHost({ baseDomain: 'example.test' }), fromPath(), fromHeader()],
  memberships: (req) => {
    const auth = req.header('authorization')
    return auth?.startsWith('Bearer ') ? (users[auth.slice(7)] ?? []) : undefined
  },
  skip: ['/health', '/public/*'],
  ...extra,
})

describe('express', () => {
  let server: Server
  let port: number
  beforeAll(async () => {
    users.ann = [ids.alpha!]
    const app = express()
    app.use(expressTenant(opts()))
    app.get('/health', (_req, res) => {
      res.json({ ctx: tryCurrentTenant() ?? null })
    })
    app.get('/t/:tenant/notes', (req, res) => {
      res.json({ ctx: tryCurrentTenant() ?? null, param: req.params.tenant, t: req.tenant?.id })
    })
    app.get('/notes', (req, res) => {
      res.json({ ctx: tryCurrentTenant() ?? null, t: req.tenant?.id })
    })
    // A server started from a script that set a tenant at the top level (seeding, a REPL):
    setCurrentTenant(ids.gamma!)
    server = app.listen(0, '127.0.0.1')
    await new Promise((r) => server.once('listening', r))
    clearCurrentTenant()
    port = (server.address() as AddressInfo).port
  })
  afterAll(
    () =>
      new Promise<void>((r) => {
        server.closeAllConnections()
        server.close(() => r())
      }),
  )

  it('a skipped route resolves no tenant: no tenant in context, whatever the process context was', async () => {
    const r = await send(port, '/health')
    expect(r.json.ctx).toBeNull()
  })
  it('host: trailing dot and upper case name the same tenant; a second dot names none', async () => {
    expect((await send(port, '/notes', { host: 'ALPHA.SHOP.' })).json.t).toBe(ids.alpha)
    expect((await send(port, '/notes', { host: 'alpha.shop..' })).status).toBe(400)
    expect((await send(port, '/notes', { host: 'alpha.shop.:8080' })).json.t).toBe(ids.alpha)
  })
  it('host: punycode of an IDN domain; the unicode form is junk', async () => {
    expect((await send(port, '/notes', { host: 'XN--BCHER-KVA.test' })).json.t).toBe(ids.beta)
  })
  it('host and header disagree: 403; X-Forwarded-Host is ignored by default', async () => {
    expect(
      (await send(port, '/notes', { host: 'alpha.shop', 'x-tenant-id': ids.beta! })).status,
    ).toBe(403)
    const r = await send(port, '/notes', {
      host: 'localhost',
      'x-forwarded-host': 'beta.example.test',
      'x-tenant-id': ids.alpha!,
    })
    expect(r.json.t).toBe(ids.alpha)
  })
  it('two X-Tenant-ID headers: refused', async () => {
    const r = await send(port, '/notes', { 'x-tenant-id': [ids.alpha!, ids.beta!] })
    expect(r.status).toBe(400)
  })
  it('two Host headers (Node keeps the first, a proxy may route by the last): no tenant from either', async () => {
    for (const host of [
      ['alpha.shop', 'beta.example.test'],
      ['beta.example.test', 'alpha.shop'],
    ]) {
      const status = await sendRaw(
        port,
        `GET /notes HTTP/1.1\r\nHost: ${host[0]}\r\nHost: ${host[1]}\r\nAuthorization: Bearer ann\r\n`,
      )
      expect(status, host.join(' + ')).toBe(400)
    }
  })
  it('path: percent-encoded and dot segments never name a tenant the router does not see', async () => {
    for (const p of [
      `/t/${ids.beta}/../${ids.alpha}/notes`,
      `/t/%62eta/notes`,
      `/T/beta/notes`,
      `//t/beta/notes`,
      `/t/beta;x/notes`,
    ]) {
      const r = await send(port, p, { authorization: 'Bearer ann', 'x-tenant-id': ids.alpha! })
      if (r.status === 200 && r.json.param !== undefined) {
        // when the route matched, the param names the tenant the context has
        expect([ids.alpha, 'alpha'], p).toContain(r.json.param)
      }
      if (r.status === 200) expect(r.json.ctx, p).toBe(ids.alpha)
    }
  })
  it('alpha.example.test names slug alpha, not a tenant that registered it as a custom domain', async () => {
    const r = await send(port, '/notes', { host: 'alpha.example.test' })
    expect(r.json.t).toBe(ids.alpha)
  })
  it('a user not a member of the tenant named by host: 403', async () => {
    expect(
      (await send(port, '/notes', { host: 'beta.example.test', authorization: 'Bearer ann' }))
        .status,
    ).toBe(403)
  })
})

describe('fastify with ignoreDuplicateSlashes / caseSensitive false', () => {
  let app: ReturnType<typeof Fastify>
  let port: number
  beforeAll(async () => {
    users.ann = [ids.alpha!]
    app = Fastify({ routerOptions: { ignoreDuplicateSlashes: true, caseSensitive: false } } as any)
    await app.register(fastifyTenant(opts({ resolvers: [fromHeader(), fromPath()] })))
    app.get('/t/:tenant/notes', async (request: { params: unknown }) => ({
      ctx: tryCurrentTenant() ?? null,
      param: (request.params as any).tenant,
    }))
    await app.listen({ port: 0, host: '127.0.0.1' })
    port = (app.server.address() as AddressInfo).port
  })
  afterAll(() => app.close())
  it('//t/beta/notes with a header for alpha: the router sees tenant beta, the middleware must too', async () => {
    const r = await send(port, `//t/beta/notes`, {
      authorization: 'Bearer ann',
      'x-tenant-id': ids.alpha!,
    })
    if (r.status === 200) expect(r.json.param).toBe('alpha')
  })
})

describe('hono', () => {
  let server: any
  let port: number
  beforeAll(async () => {
    users.ann = [ids.alpha!]
    const app = new Hono()
    app.use(honoTenant(opts({ resolvers: [fromHeader(), fromPath()] })))
    app.get('/t/:tenant/notes', (c) =>
      c.json({ ctx: tryCurrentTenant() ?? null, param: c.req.param('tenant') }),
    )
    server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' })
    await new Promise((r) => server.once('listening', r))
    port = server.address().port
  })
  afterAll(() => new Promise<void>((r) => server.close(() => r())))
  it('dot segments and encodings: the router param agrees with the context', async () => {
    for (const p of [
      `/x/../t/beta/notes`,
      `/t/%62eta/notes`,
      `/t/beta/%2e%2e/beta/notes`,
      `//t/beta/notes`,
      `/t/beta%2Fnotes`,
    ]) {
      const r = await send(port, p, { authorization: 'Bearer ann', 'x-tenant-id': ids.alpha! })
      if (r.status === 200) expect([ids.alpha, 'alpha'], p).toContain(r.json.param)
    }
  })
})

const paths = [
  `/%74/beta/notes`,
  `/%54/beta/notes`,
  `/t%2Fbeta/notes`,
  `/t/beta%2fnotes`,
  `/./t/beta/notes`,
  `/t/./beta/notes`,
  `/t//beta/notes`,
  `/t/beta/notes/`,
  `/t/beta%20/notes`,
  `/t/%20beta/notes`,
  `/t/BETA/notes`,
]
/** The paths whose router param names another tenant than the context's. */
async function probe(port: number) {
  const bad: string[] = []
  for (const p of paths) {
    const r = await send(port, p, { authorization: 'Bearer ann', 'x-tenant-id': ids.alpha! })
    if (
      r.status === 200 &&
      r.json.param !== undefined &&
      ![ids.alpha, 'alpha'].includes(r.json.param)
    )
      bad.push(p)
  }
  return bad
}

describe('a percent-encoded or otherwise spelled path prefix: fastify default', () => {
  it('router param agrees with the context', async () => {
    users.ann = [ids.alpha!]
    const app = Fastify()
    await app.register(fastifyTenant(opts({ resolvers: [fromHeader(), fromPath()] })))
    app.get('/t/:tenant/notes', async (request) => ({
      ctx: tryCurrentTenant() ?? null,
      param: (request.params as any).tenant,
    }))
    await app.listen({ port: 0, host: '127.0.0.1' })
    const port = (app.server.address() as AddressInfo).port
    try {
      expect(await probe(port)).toEqual([])
    } finally {
      await app.close()
    }
  })
  it('fastify ignoreDuplicateSlashes+caseSensitive false+ignoreTrailingSlash', async () => {
    users.ann = [ids.alpha!]
    const app = Fastify({
      routerOptions: {
        ignoreDuplicateSlashes: true,
        caseSensitive: false,
        ignoreTrailingSlash: true,
      },
    } as any)
    await app.register(fastifyTenant(opts({ resolvers: [fromHeader(), fromPath()] })))
    app.get('/t/:tenant/notes', async (request) => ({
      ctx: tryCurrentTenant() ?? null,
      param: (request.params as any).tenant,
    }))
    await app.listen({ port: 0, host: '127.0.0.1' })
    const port = (app.server.address() as AddressInfo).port
    try {
      expect(await probe(port)).toEqual([])
    } finally {
      await app.close()
    }
  })
})

describe('a percent-encoded or otherwise spelled path prefix: hono', () => {
  it('router param agrees with the context', async () => {
    users.ann = [ids.alpha!]
    const app = new Hono()
    app.use(honoTenant(opts({ resolvers: [fromHeader(), fromPath()] })))
    app.get('/t/:tenant/notes', (c) =>
      c.json({ ctx: tryCurrentTenant() ?? null, param: c.req.param('tenant') }),
    )
    const server: any = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' })
    await new Promise((r) => server.once('listening', r))
    const port = server.address().port
    try {
      expect(await probe(port)).toEqual([])
    } finally {
      await new Promise<void>((r) => server.close(() => r()))
    }
  })
})

describe('a percent-encoded or otherwise spelled path prefix: express', () => {
  it('router param agrees with the context', async () => {
    users.ann = [ids.alpha!]
    const app = express()
    app.use(expressTenant(opts({ resolvers: [fromHeader(), fromPath()] })))
    app.get('/t/:tenant/notes', (req, res) => {
      res.json({ ctx: tryCurrentTenant() ?? null, param: req.params.tenant })
    })
    const server: Server = await new Promise((r) => {
      const s = app.listen(0, '127.0.0.1', () => r(s))
    })
    const port = (server.address() as AddressInfo).port
    try {
      expect(await probe(port)).toEqual([])
    } finally {
      await new Promise<void>((r) => server.close(() => r()))
    }
  })
})
