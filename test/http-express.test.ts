import express from 'express'
import { tenant } from '../src/entries/express.js'
import { describeTenantMiddleware, portOf } from './http-scenario.js'

describeTenantMiddleware({
  name: 'express',
  async start(options, handlers) {
    const app = express()
    app.use(tenant(options))
    // Body parsing mounted AFTER the middleware on purpose: the pitfall is a handler
    // called from a later stream event, outside the tenant scope.
    app.use(express.json())
    app.get('/health', (_req, res) => {
      res.json(handlers.health())
    })
    app.get('/public/leak', () => handlers.leak())
    app.get('/notes', async (req, res) => {
      res.json(await handlers.notes(req.tenant))
    })
    app.get('/t/:tenant/notes', async (req, res) => {
      res.json(await handlers.notes(req.tenant))
    })
    app.post('/notes', async (req, res) => {
      res.json(await handlers.echo(req.tenant, req.body))
    })
    const server = app.listen(0, '127.0.0.1')
    await new Promise((resolve) => server.once('listening', resolve))
    return {
      port: portOf(server),
      close: () =>
        new Promise<void>((resolve) => {
          server.closeAllConnections()
          server.close(() => resolve())
        }),
    }
  },
})
