import type { Context, ErrorHandler, MiddlewareHandler, Next } from 'hono'
import type { ContentfulStatusCode } from 'hono/utils/http-status'
import { runAsTopLevel, runWithTenant } from '../context/index.js'
import type { Tenant } from '../tenants/index.js'
import { type ProblemDetails, problemForError, problemHeaders } from './problem.js'
import { pathOf, targetOf } from './request-view.js'
import { createTenantResolution } from './resolve-tenant.js'
import type { TenantMiddlewareOptions, TenantRequest } from './types.js'

declare module 'hono' {
  interface ContextVariableMap {
    /** The checked tenant of this request; set by rowtenancy's `tenant()` middleware. */
    tenant?: Tenant
  }
}

/**
 * Hono 4 middleware: resolves the request's tenant, checks it (400 / 403 / 404
 * as `application/problem+json`), sets `c.get('tenant')`, and awaits the rest of
 * the chain inside `runWithTenant`. A handler error that means the database is
 * unavailable (down, pool full, connection lost, a timeout) is answered with 503
 * problem+json and `Retry-After` in place of `app.onError`'s answer.
 *
 * @example
 * ```ts
 * import { fromHeader, tenant } from 'rowtenancy/hono'
 * app.use(tenant({ store, resolvers: [fromHeader()], skip: ['/health'] }))
 * app.get('/notes', async (c) => c.json(await listNotes(currentTenant())))
 * ```
 */
export const tenant = (options: TenantMiddlewareOptions<Context>): MiddlewareHandler => {
  const resolve = createTenantResolution(options)
  return async function tenant(c: Context, next: Next) {
    const url = targetOf(c.req.url)
    const view: TenantRequest<Context> = {
      method: c.req.method,
      path: pathOf(url),
      url,
      header: (name) => c.req.header(name),
      raw: c,
    }
    const outcome = await resolve(view)
    // A skipped route runs with no tenant, whatever context the server was started in.
    if (outcome.kind === 'skipped') return runAsTopLevel(undefined, next)
    if (outcome.kind === 'refused') {
      return problemResponse(c, outcome.problem)
    }
    c.set('tenant', outcome.tenant)
    await runWithTenant(outcome.tenant.id, next)
    // A handler's error was already answered by app.onError (Hono's default: 500 text).
    // When it means the database is unavailable, answer 503 problem+json instead.
    if (c.error !== undefined) {
      const problem = problemForError(c.error)
      if (problem?.status === 503) c.res = problemResponse(c, problem)
    }
  }
}

function problemResponse(c: Context, problem: ProblemDetails): Response {
  return c.body(JSON.stringify(problem), problem.status as ContentfulStatusCode, {
    ...problemHeaders(problem),
  })
}

/**
 * A Hono `onError` handler: a `TenancyError`, or a `pg` error that means the
 * database is unavailable, becomes `application/problem+json` (503 with
 * `Retry-After` for the database), without the message or a stack; an
 * `HTTPException` answers with its own response; anything else is logged and
 * answered `500` as Hono does by default.
 *
 * @example
 * ```ts
 * app.onError(tenancyErrorHandler())
 * ```
 */
export const tenancyErrorHandler = (): ErrorHandler =>
  function tenancyErrorHandler(err, c) {
    const problem = problemForError(err)
    if (problem) return problemResponse(c, problem)
    const own = err as { getResponse?: () => Response }
    if (typeof own.getResponse === 'function') return own.getResponse()
    console.error(err)
    return c.text('Internal Server Error', 500)
  }
