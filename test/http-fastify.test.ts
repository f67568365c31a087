import Fastify from 'fastify'
import { describe, expect, it } from 'vitest'
import { runWithTenant, tryCurrentTenant } from '../src/context/index.js'
import { tenant } from '../src/entries/fastify.js'
import { TenantStore } from '../src/tenants/index.js'
import { describeTenantMiddleware } from './http-scenario.js'

describeTenantMiddleware({
  name: 'fastify',
  async start(options, handlers) {
    const app = Fastify()
    await app.register(tenant(options))
    // An async preHandler registered after the plugin: its continuation must stay in scope.
    app.addHook('preHandler', async () => {
      await new Promise((resolve) => setTimeout(resolve, 1))
    })
    app.get('/health', async () => handlers.health())
    app.get('/public/leak', async () => handlers.leak())
    app.get('/notes', async (request) => handlers.notes(request.tenant))
    app.get('/t/:tenant/notes', async (request) => handlers.notes(request.tenant))
    app.post('/notes', async (request) => handlers.echo(request.tenant, request.body))
    await app.listen({ port: 0, host: '127.0.0.1' })
    const address = app.server.address()
    return {
      port: typeof address === 'object' && address ? address.port : 0,
      close: () => app.close(),
    }
  },
})

describe('fastify hooks and AsyncLocalStorage', () => {
  // The pitfall the plugin's callback-style preHandler avoids: an async hook that
  // wraps its own body in runWithTenant ends the scope before the handler runs,
  // because Fastify continues the chain from the hook's promise, not from inside it.
  const seen = async (hook: 'async' | 'done') => {
    const app = Fastify()
    if (hook === 'async') {
      app.addHook('preHandler', async () => {
        await runWithTenant('7', async () => {})
      })
    } else {
      app.addHook('preHandler', (_request, _reply, done) => runWithTenant('7', done))
    }
    app.get('/', async () => ({ tenant: tryCurrentTenant() ?? null }))
    await app.listen({ port: 0, host: '127.0.0.1' })
    try {
      const address = app.server.address()
      const port = typeof address === 'object' && address ? address.port : 0
      return (await (await fetch(`http://127.0.0.1:${port}/`)).json()) as { tenant: unknown }
    } finally {
      await app.close()
    }
  }
  it('a route with config: { tenant: false } needs no tenant, and never gets one', async () => {
    const store = new TenantStore({
      db: {
        query: async () => {
          throw new Error('never reached')
        },
      },
    })
    const app = Fastify()
    await app.register(tenant({ store }))
    app.get('/signup', { config: { tenant: false } }, async (request) => ({
      tenant: request.tenant ?? null,
      context: tryCurrentTenant() ?? null,
    }))
    const reply = await app.inject({ url: '/signup', headers: { 'x-tenant-id': 'acme' } })
    expect(reply.statusCode).toBe(200)
    expect(reply.json()).toEqual({ tenant: null, context: null })
    await app.close()
  })

  it('an async hook does not cover the handler; runWithTenant(id, done) does', async () => {
    expect(await seen('async')).toEqual({ tenant: null })
    expect(await seen('done')).toEqual({ tenant: '7' })
  })
})
