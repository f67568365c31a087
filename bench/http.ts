/**
 * Request middleware benchmark: requests per second of a route that reads one
 * tenant's row, with `tenant()` (resolve + check + runWithTenant, query through
 * currentTenant()) vs a handler that does the lookup by hand (header -> cached
 * store.find -> status check -> query), per framework, as a ratio (target >= 0.9).
 *
 *   npx tsx bench/http.ts            # full run
 *   npx tsx bench/http.ts --quick    # smoke run
 *   npx tsx bench/http.ts --only=hono
 *
 * Uses DATABASE_URL when set (a scratch database is created and dropped), else an
 * embedded PostgreSQL. The load generator runs in-process: N concurrent keep-alive
 * loops against 127.0.0.1 for a fixed number of requests.
 */
import { Agent, request, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { serve } from '@hono/node-server'
import express from 'express'
import Fastify from 'fastify'
import { Hono } from 'hono'
import pg from 'pg'
import { currentTenant } from '../src/context/index.js'
import { tenant as expressTenant } from '../src/entries/express.js'
import { tenant as fastifyTenant } from '../src/entries/fastify.js'
import { tenant as honoTenant } from '../src/entries/hono.js'
import { fromHeader, type TenantMiddlewareOptions } from '../src/http/index.js'
import { installTenantTables, type Tenant, TenantStore } from '../src/tenants/index.js'
import { openScratchDatabase } from './scratch-database.js'

const quick = process.argv.includes('--quick')
const only = process.argv.find((a) => a.startsWith('--only='))?.slice('--only='.length)
const CONCURRENCY = 32
const REQUESTS = quick ? 500 : 2_000
const ROUNDS = quick ? 6 : 20
const WARMUP = quick ? 1_000 : 3_000
const TENANTS = 20

type Read = (tenantId: string) => Promise<unknown>
type Manual = (slug: string | undefined) => Promise<{ status: number; body: unknown }>

interface Framework {
  readonly name: string
  start(kind: 'middleware' | 'manual'): Promise<{ port: number; close(): Promise<void> }>
}

function portOf(server: Server): number {
  return (server.address() as AddressInfo).port
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.closeAllConnections()
    server.close(() => resolve())
  })
}

function frameworks(options: TenantMiddlewareOptions, read: Read, manual: Manual): Framework[] {
  return [
    {
      name: 'express',
      async start(kind) {
        const app = express()
        if (kind === 'middleware') {
          app.use(expressTenant(options))
          app.get('/note', async (_req, res) => {
            res.json(await read(String(currentTenant())))
          })
        } else {
          app.get('/note', async (req, res) => {
            const { status, body } = await manual(req.get('x-tenant-id'))
            res.status(status).json(body)
          })
        }
        const server = app.listen(0, '127.0.0.1')
        await new Promise((resolve) => server.once('listening', resolve))
        return { port: portOf(server), close: () => closeServer(server) }
      },
    },
    {
      name: 'fastify',
      async start(kind) {
        const app = Fastify()
        if (kind === 'middleware') {
          await app.register(fastifyTenant(options))
          app.get('/note', async () => read(String(currentTenant())))
        } else {
          app.get('/note', async (request, reply) => {
            const value = request.headers['x-tenant-id']
            const { status, body } = await manual(typeof value === 'string' ? value : undefined)
            return reply.code(status).send(body)
          })
        }
        await app.listen({ port: 0, host: '127.0.0.1' })
        return { port: portOf(app.server), close: () => app.close() }
      },
    },
    {
      name: 'hono',
      async start(kind) {
        const app = new Hono()
        if (kind === 'middleware') {
          app.use(honoTenant(options))
          app.get('/note', async (c) => c.json(await read(String(currentTenant()))))
        } else {
          app.get('/note', async (c) => {
            const { status, body } = await manual(c.req.header('x-tenant-id'))
            return c.json(body, status as 200)
          })
        }
        const server = await new Promise<Server>((resolve) => {
          const s = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () =>
            resolve(s as Server),
          )
        })
        return { port: portOf(server), close: () => closeServer(server) }
      },
    },
  ]
}

/** N concurrent keep-alive loops sending `total` requests; returns requests per second. */
async function load(port: number, total: number, slugs: readonly string[]): Promise<number> {
  const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY })
  let next = 0
  let failed = 0
  const one = (slug: string) =>
    new Promise<void>((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port, path: '/note', agent, headers: { 'x-tenant-id': slug } },
        (res) => {
          if (res.statusCode !== 200) failed++
          res.resume()
          res.on('end', resolve)
        },
      )
      req.on('error', reject)
      req.end()
    })
  const started = performance.now()
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < total) {
        const i = next++
        await one(slugs[i % slugs.length]!)
      }
    }),
  )
  const seconds = (performance.now() - started) / 1000
  agent.destroy()
  if (failed > 0) throw new Error(`${failed} of ${total} requests did not answer 200`)
  return total / seconds
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}

async function main(): Promise<void> {
  const scratch = await openScratchDatabase('rt_bench_http')
  const pool = new pg.Pool({ connectionString: scratch.url, max: 16 })
  pool.on('error', () => {}) // idle clients closed by the final drop ... with (force)
  try {
    await installTenantTables(pool)
    await pool.query(`create table notes (
      tenant_id bigint not null references tenants (id),
      id bigint generated always as identity,
      body text not null,
      primary key (tenant_id, id))`)
    const store = new TenantStore({ db: pool, ttlMs: 60_000 })
    const slugs: string[] = []
    for (let i = 1; i <= TENANTS; i++) {
      const t = await store.create({ slug: `tenant-${i}`, name: `Tenant ${i}` })
      slugs.push(t.slug)
      await pool.query('insert into notes (tenant_id, body) values ($1, $2), ($1, $3)', [
        t.id,
        `note of ${t.slug}`,
        'second note',
      ])
    }
    const read: Read = async (tenantId) => {
      const { rows } = await pool.query(
        'select id::text, body from notes where tenant_id = $1 order by id limit 1',
        [tenantId],
      )
      return rows[0]
    }
    // The hand-written baseline: the same lookup through the same cached store.
    const manual: Manual = async (value) => {
      if (value === undefined) return { status: 400, body: { code: 'MISSING_TENANT' } }
      let found: Tenant | undefined
      try {
        found = await store.find(value)
      } catch {
        return { status: 400, body: { code: 'INVALID_TENANT_ID' } }
      }
      if (!found) return { status: 404, body: { code: 'TENANT_NOT_FOUND' } }
      if (found.status !== 'active') return { status: 403, body: { code: 'TENANT_SUSPENDED' } }
      return { status: 200, body: await read(found.id) }
    }
    const options: TenantMiddlewareOptions = { store, resolvers: [fromHeader()], skip: ['/health'] }

    console.log(
      `http middleware bench: ${ROUNDS} rounds x ${REQUESTS} requests per variant, ${CONCURRENCY} concurrent, ` +
        `${TENANTS} tenants, ${scratch.embedded ? 'embedded PostgreSQL' : 'DATABASE_URL'}`,
    )
    const results: { framework: string; middleware: number; manual: number; ratio: number }[] = []
    for (const framework of frameworks(options, read, manual)) {
      if (only && framework.name !== only) continue
      const apps = {
        middleware: await framework.start('middleware'),
        manual: await framework.start('manual'),
      }
      try {
        for (const app of Object.values(apps)) await load(app.port, WARMUP, slugs)
        // Short rounds, A/B then B/A: each round's ratio compares two runs made
        // seconds apart, so drift and neighbours' load cancel out; report medians.
        const rps = { middleware: [] as number[], manual: [] as number[] }
        const ratios: number[] = []
        for (let round = 0; round < ROUNDS; round++) {
          const order =
            round % 2 === 0
              ? (['middleware', 'manual'] as const)
              : (['manual', 'middleware'] as const)
          for (const kind of order) rps[kind].push(await load(apps[kind].port, REQUESTS, slugs))
          ratios.push(rps.middleware[round]! / rps.manual[round]!)
        }
        results.push({
          framework: framework.name,
          middleware: median(rps.middleware),
          manual: median(rps.manual),
          ratio: median(ratios),
        })
      } finally {
        await apps.middleware.close()
        await apps.manual.close()
      }
    }
    console.log('')
    console.log('framework  middleware req/s  by-hand req/s  median ratio (target >= 0.90)')
    for (const r of results) {
      console.log(
        `${r.framework.padEnd(10)} ${r.middleware.toFixed(0).padStart(17)} ${r.manual.toFixed(0).padStart(14)}  ` +
          `${r.ratio.toFixed(3)}${r.ratio >= 0.9 ? '' : '  (below target)'}`,
      )
    }
    console.log(
      `\ntenant lookups that reached the database: ${store.lookupQueries} ` +
        `(${TENANTS} while creating the tenants; then one per tenant per 60 s TTL, shared by the frameworks)`,
    )
  } finally {
    await pool.end()
    await scratch.close()
  }
}

await main()
