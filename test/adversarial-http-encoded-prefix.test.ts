/**
 * Hostile code: a percent-encoded path prefix (`/%74/beta`) that a router routes to
 * `/t/:tenant` must name the same tenant to fromPath (Express, Fastify, Hono).
 */
import { request, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { serve } from '@hono/node-server'
import express from 'express'
import Fastify from 'fastify'
import { Hono } from 'hono'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { tryCurrentTenant } from '../src/context/index.js'
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
async function probe(port: number, _label: string) {
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

describe('fastify default', () => {
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
      expect(await probe(port, 'fastify')).toEqual([])
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
      expect(await probe(port, 'fastify-opts')).toEqual([])
    } finally {
      await app.close()
    }
  })
})

describe('hono', () => {
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
      expect(await probe(port, 'hono')).toEqual([])
    } finally {
      await new Promise<void>((r) => server.close(() => r()))
    }
  })
})

describe('express', () => {
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
      expect(await probe(port, 'express')).toEqual([])
    } finally {
      await new Promise<void>((r) => server.close(() => r()))
    }
  })
})
