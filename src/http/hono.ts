import type { Context, MiddlewareHandler, Next } from 'hono'
import { runWithTenant } from '../context/index.js'
import type { Tenant } from '../tenants/index.js'
import { PROBLEM_HEADERS } from './problem.js'
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
 * the chain inside `runWithTenant`.
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
    if (outcome.kind === 'skipped') return next()
    if (outcome.kind === 'refused') {
      const status = outcome.problem.status as 400 | 403 | 404
      return c.body(JSON.stringify(outcome.problem), status, { ...PROBLEM_HEADERS })
    }
    c.set('tenant', outcome.tenant)
    return runWithTenant(outcome.tenant.id, next)
  }
}
