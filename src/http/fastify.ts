import type {
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
  HookHandlerDoneFunction,
} from 'fastify'
import fp from 'fastify-plugin'
import { runAsTopLevel, runWithTenant } from '../context/index.js'
import type { Tenant } from '../tenants/index.js'
import { problemForError, problemHeaders } from './problem.js'
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
          resolve(
            nodeRequestView(
              request,
              request.method,
              request.url,
              request.headers,
              request.raw.rawHeaders,
            ),
          ).then(
            (outcome) => {
              if (outcome.kind === 'refused') {
                reply
                  .code(outcome.problem.status)
                  .headers(problemHeaders(outcome.problem))
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
          // A skipped route runs with no tenant, whatever context the server was started in.
          if (request.tenant === undefined) return runAsTopLevel(undefined, done)
          runWithTenant(request.tenant.id, done)
        },
      )
    },
    { fastify: '5.x', name: 'rowtenancy-tenant' },
  )
}

/**
 * A Fastify error handler: a `TenancyError`, or a `pg` error that means the
 * database is unavailable (refused, pool full, connection lost, a timeout),
 * becomes `application/problem+json` (503 with `Retry-After` for the
 * database), without the message or a stack; any other error goes to the
 * parent (default) error handler.
 *
 * @example
 * ```ts
 * app.setErrorHandler(tenancyErrorHandler())
 * ```
 */
export const tenancyErrorHandler = () =>
  function tenancyErrorHandler(error: unknown, _request: FastifyRequest, reply: FastifyReply) {
    const problem = problemForError(error)
    if (!problem) return reply.send(error)
    return reply.code(problem.status).headers(problemHeaders(problem)).send(JSON.stringify(problem))
  }
