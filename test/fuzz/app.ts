import { Agent, request, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { serve } from '@hono/node-server'
import { Hono } from 'hono'
import { currentTenant } from '../../src/context/index.js'
import { fromHeader, tenant } from '../../src/entries/hono.js'
import type { TenantStore } from '../../src/tenants/index.js'
import { type Call, executeCall, type FuzzEnv, InjectedFailure, type Via } from './executors.js'

/** The fuzzer's HTTP app, on a real port. */
export interface FuzzApp {
  readonly port: number
  /** POSTs one call for the tenant named in X-Tenant-ID; keep-alive sockets are shared across tenants. */
  call(tenantValue: string, via: Via, call: Call): Promise<HttpReply>
  close(): Promise<void>
}

export interface HttpReply {
  status: number
  body: any
}

/**
 * Starts a Hono app with rowtenancy's middleware (`fromHeader()`) and one route,
 * `POST /call`, that runs the posted call for the request's tenant. The handler
 * echoes the tenant it saw in the async context, so a lost or crossed context shows.
 *
 * @example
 * ```ts
 * const app = await startFuzzApp(env, store)
 * await app.call('3', 'pg', { m: 'list', variant: 0, jitter: 0 })
 * ```
 */
export async function startFuzzApp(env: FuzzEnv, store: TenantStore): Promise<FuzzApp> {
  const app = new Hono()
  app.onError((err, c) => c.json({ error: String(err) }, 500))
  app.use(tenant({ store, resolvers: [fromHeader()] }))
  app.post('/call', async (c) => {
    const { via, call } = (await c.req.json()) as { via: Via; call: Call }
    const before = String(currentTenant())
    try {
      const result = await executeCall(env, via, call)
      return c.json({ tenant: before, after: String(currentTenant()), result })
    } catch (err) {
      if (err instanceof InjectedFailure) return c.json({ injected: true, tenant: before }, 409)
      const code = (err as { code?: unknown }).code
      if (code === '23505') return c.json({ pgCode: code, tenant: before }, 422)
      throw err
    }
  })
  const server = await new Promise<Server>((resolve) => {
    const s = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () =>
      resolve(s as Server),
    )
  })
  const port = (server.address() as AddressInfo).port
  // Few sockets, kept alive: one socket carries requests of many tenants in turn.
  const agent = new Agent({ keepAlive: true, maxSockets: 3 })
  return {
    port,
    call(tenantValue, via, call) {
      const body = JSON.stringify({ via, call })
      return new Promise<HttpReply>((resolve, reject) => {
        const req = request(
          {
            host: '127.0.0.1',
            port,
            path: '/call',
            method: 'POST',
            agent,
            headers: {
              'content-type': 'application/json',
              'content-length': Buffer.byteLength(body),
              'x-tenant-id': tenantValue,
            },
          },
          (res) => {
            let text = ''
            res.setEncoding('utf8')
            res.on('data', (d) => {
              text += d
            })
            res.on('end', () => {
              try {
                resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) })
              } catch {
                resolve({ status: res.statusCode ?? 0, body: text })
              }
            })
          },
        )
        req.on('error', reject)
        req.end(body)
      })
    },
    close: () =>
      new Promise<void>((resolve) => {
        agent.destroy()
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
