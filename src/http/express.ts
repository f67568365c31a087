import type { ErrorRequestHandler, NextFunction, Request, Response } from 'express'
import { runAsTopLevel, runWithTenant } from '../context/index.js'
import type { Tenant } from '../tenants/index.js'
import { problemForError, problemHeaders } from './problem.js'
import { nodeRequestView } from './request-view.js'
import { createTenantResolution } from './resolve-tenant.js'
import type { TenantMiddlewareOptions } from './types.js'

declare global {
  namespace Express {
    interface Request {
      /** The checked tenant of this request; set by rowtenancy's `tenant()` middleware. */
      tenant?: Tenant
    }
  }
}

/**
 * Express 5 middleware: resolves the request's tenant, checks it (400 malformed,
 * 403 forbidden or suspended, 404 unknown, as `application/problem+json`), sets
 * `req.tenant`, and runs the rest of the request inside `runWithTenant`, so
 * later middleware, the handler and everything it awaits see `currentTenant()`
 * (body parsers may sit before or after it: a body that arrives later still
 * continues inside the scope; the tests send one in two delayed chunks).
 *
 * @example
 * ```ts
 * import { fromHeader, tenant } from 'rowtenancy/express'
 * app.use(express.json())
 * app.use(tenant({ store, resolvers: [fromHeader()], skip: ['/health'] }))
 * app.get('/notes', async (req, res) => {
 *   res.json(await pool.query('select * from notes where tenant_id = $1', [currentTenant()]))
 * })
 * ```
 */
export const tenant = (options: TenantMiddlewareOptions<Request>) => {
  const resolve = createTenantResolution(options)
  return async function tenant(req: Request, res: Response, next: NextFunction): Promise<void> {
    const outcome = await resolve(
      nodeRequestView(req, req.method, req.originalUrl, req.headers, req.rawHeaders),
    )
    // A skipped route runs with no tenant, whatever context the server was started in.
    if (outcome.kind === 'skipped') return runAsTopLevel(undefined, () => next())
    if (outcome.kind === 'refused') {
      res
        .status(outcome.problem.status)
        .set(problemHeaders(outcome.problem))
        .send(JSON.stringify(outcome.problem))
      return
    }
    req.tenant = outcome.tenant
    runWithTenant(outcome.tenant.id, () => next())
  }
}

/**
 * Express error middleware: answers a `TenancyError`, or a `pg` error that means
 * the database is unavailable (refused, pool full, connection lost, a timeout),
 * as `application/problem+json` (503 with `Retry-After` for the database;
 * `httpStatusOf` for the rest), without the message or a stack. Any other error
 * goes on to the next error handler. Register it after your routes.
 *
 * @example
 * ```ts
 * app.use(tenant({ store }))
 * app.get('/notes', listNotes)
 * app.use(tenancyErrorHandler()) // a database outage in listNotes -> 503 problem+json
 * ```
 */
export const tenancyErrorHandler = (): ErrorRequestHandler =>
  function tenancyErrorHandler(err: unknown, _req: Request, res: Response, next: NextFunction) {
    const problem = problemForError(err)
    if (!problem || res.headersSent) return next(err)
    res.status(problem.status).set(problemHeaders(problem)).send(JSON.stringify(problem))
  }
