import { serve } from '@hono/node-server'
import { Hono } from 'hono'
import { tenant } from '../src/entries/hono.js'
import { describeTenantMiddleware, portOf } from './http-scenario.js'

describeTenantMiddleware({
  name: 'hono',
  async start(options, handlers) {
    const app = new Hono()
    app.onError((err, c) => c.text(String(err), 500)) // quiet: the default logs every error
    app.use(tenant(options))
    app.get('/health', (c) => c.json(handlers.health()))
    app.get('/public/leak', () => handlers.leak())
    app.get('/notes', async (c) => c.json(await handlers.notes(c.get('tenant'))))
    app.get('/t/:tenant/notes', async (c) => c.json(await handlers.notes(c.get('tenant'))))
    app.post('/notes', async (c) =>
      c.json(await handlers.echo(c.get('tenant'), await c.req.json())),
    )
    const server = await new Promise<ReturnType<typeof serve>>((resolve) => {
      const s = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(s))
    })
    return {
      port: portOf(server as import('node:http').Server),
      close: () =>
        new Promise<void>((resolve) => {
          ;(server as import('node:http').Server).closeAllConnections()
          server.close(() => resolve())
        }),
    }
  },
})
