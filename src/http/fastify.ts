import type {
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
  HookHandlerDoneFunction,
} from 'fastify'
import fp from 'fastify-plugin'
import { runWithTenant } from '../context/index.js'
import type { Tenant } from '../tenants/index.js'
import { PROBLEM_HEADERS } from './problem.js'
import { nodeRequestView } from './request-view.js'
import { createTenantResolution } from './resolve-tenant.js'
import type { TenantMiddlewareOptions } from './types.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** The checked tenant of this request; set by rowtenancy's `tenant()` plugin. */
    tenant?: Tenant
  }
  interface FastifyContextConfig {
    /** `false` marks a route as needing no tenant (like the `skip` option). */
    tenant?: boolean
  }
}

/**
 * Fastify 5 plugin (wrapped with `fastify-plugin`, so it covers the whole app):
 * an `onRequest` hook resolves and checks the tenant before the body is read
 * (400 / 403 / 404 as `application/problem+json`) and sets `request.tenant`;
 * a `preHandler` hook then continues the request inside `runWithTenant`, so the
 * handler and everything it awaits see `currentTenant()`. Both hooks are
 * callback-style: the handler chain continues from `done`, inside the scope.
 * A route with `config: { tenant: false }` needs no tenant.
 *
 * @example
 * ```ts
 * import { fromHeader, tenant } from 'rowtenancy/fastify'
 * await app.register(tenant({ store, resolvers: [fromHeader()], skip: ['/health'] }))
 * app.get('/notes', async (request) => listNotes(currentTenant()))
 * app.get('/signup', { config: { tenant: false } }, signUp)
 * ```
 */
export const tenant = (options: TenantMiddlewareOptions<FastifyRequest>) => {
  const resolve = createTenantResolution(options)
  return fp(
    async function tenant(fastify: FastifyInstance) {
      if (!fastify.hasRequestDecorator('tenant')) fastify.decorateRequest('tenant', undefined)
      fastify.addHook(
        'onRequest',
        function resolveTenant(
          request: FastifyRequest,
          reply: FastifyReply,
          done: HookHandlerDoneFunction,
        ) {
          request.tenant = undefined
          if (request.routeOptions.config?.tenant === false) return done()
          resolve(nodeRequestView(request, request.method, request.url, request.headers)).then(
            (outcome) => {
              if (outcome.kind === 'refused') {
                reply
                  .code(outcome.problem.status)
                  .headers(PROBLEM_HEADERS)
                  .send(JSON.stringify(outcome.problem))
                return
              }
              if (outcome.kind === 'tenant') request.tenant = outcome.tenant
              done()
            },
            (err: Error) => done(err),
          )
        },
      )
      fastify.addHook(
        'preHandler',
        function tenantScope(
          request: FastifyRequest,
          _reply: FastifyReply,
          done: HookHandlerDoneFunction,
        ) {
          if (request.tenant === undefined) return done()
          runWithTenant(request.tenant.id, done)
        },
      )
    },
    { fastify: '5.x', name: 'rowtenancy-tenant' },
  )
}
