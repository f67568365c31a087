import Fastify from 'fastify'
import { tenant } from '../src/http/fastify.js'
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
