import { TenancyError } from '../errors/index.js'
import { asUnavailable } from '../sql/unavailable.js'
import { httpStatusOf } from './status.js'

/**
 * An RFC 9457 problem document (`application/problem+json`) with the stable
 * rowtenancy `code` as an extension member.
 *
 * @example
 * ```ts
 * const body: ProblemDetails = {
 *   type: 'urn:rowtenancy:problem:tenant-forbidden',
 *   title: 'Forbidden tenant',
 *   status: 403,
 *   code: 'TENANT_FORBIDDEN',
 *   detail: 'You may not act for this tenant, or it does not exist.',
 * }
 * ```
 */
export interface ProblemDetails {
  readonly type: string
  readonly title: string
  readonly status: number
  readonly code: string
  readonly detail: string
}

/** The media type of problem responses. @example `res.type(PROBLEM_CONTENT_TYPE)` */
export const PROBLEM_CONTENT_TYPE = 'application/problem+json'

const TITLES: Record<string, string> = {
  MISSING_TENANT: 'Tenant required',
  INVALID_TENANT_ID: 'Malformed tenant',
  TENANT_NOT_FOUND: 'Unknown tenant',
  TENANT_FORBIDDEN: 'Forbidden tenant',
  TENANT_SUSPENDED: 'Suspended tenant',
  DATABASE_UNREACHABLE: 'Database unavailable',
  DATABASE_UNAVAILABLE: 'Database unavailable',
  TENANT_MIGRATING: 'Tenant migrating',
}

/**
 * Builds the problem document for a refusal. `detail` is written for the client
 * and never echoes the value it sent, nor says whether another tenant exists.
 *
 * @example
 * ```ts
 * problemFor(new TenantSuspendedError('acme'), 'This tenant is suspended.')
 * // { type: 'urn:rowtenancy:problem:tenant-suspended', status: 403, code: 'TENANT_SUSPENDED', ... }
 * ```
 */
export function problemFor(error: TenancyError, detail: string): ProblemDetails {
  return Object.freeze({
    type: `urn:rowtenancy:problem:${error.code.toLowerCase().replaceAll('_', '-')}`,
    title: TITLES[error.code] ?? 'Tenant error',
    status: httpStatusOf(error),
    code: error.code,
    detail,
  })
}

/**
 * The headers every problem response carries: the media type, and `no-store` so
 * that no cache keeps an answer about one tenant for another request.
 *
 * @example
 * ```ts
 * for (const [name, value] of Object.entries(PROBLEM_HEADERS)) res.setHeader(name, value)
 * ```
 */
export const PROBLEM_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'content-type': PROBLEM_CONTENT_TYPE,
  'cache-control': 'no-store',
})

/** Seconds a client is asked to wait before retrying a 503. @example `RETRY_AFTER_SECONDS // 2` */
export const RETRY_AFTER_SECONDS = 2

/**
 * The headers of one problem response: {@link PROBLEM_HEADERS}, plus
 * `Retry-After` on a 503 (the database is unavailable; retrying is safe).
 *
 * @example
 * ```ts
 * res.status(problem.status).set(problemHeaders(problem)).send(JSON.stringify(problem))
 * ```
 */
export function problemHeaders(problem: ProblemDetails): Readonly<Record<string, string>> {
  return problem.status === 503 ? RETRY_HEADERS : PROBLEM_HEADERS
}

const RETRY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  ...PROBLEM_HEADERS,
  'retry-after': String(RETRY_AFTER_SECONDS),
})

const UNAVAILABLE =
  'The database is unavailable right now (down, restarting, overloaded or slow). Nothing was changed unless a response said so; retry after a few seconds.'

/** The client-facing detail of an error raised after the tenant was resolved: fixed per status, never the message. */
function detailFor(status: number): string {
  if (status === 503) return UNAVAILABLE
  if (status === 400) return 'The request is malformed.'
  if (status === 403) return 'This request is not allowed.'
  if (status === 404) return 'Not found.'
  if (status === 409) return 'This conflicts with an existing record.'
  return 'The server could not complete the request.'
}

/**
 * The problem document for an error thrown by a handler (or by the tenant
 * lookup): a `TenancyError`, or a raw `pg` error that means the database is
 * unavailable (refused, pool full, connection lost, timeout), which becomes a
 * 503 `DATABASE_UNAVAILABLE`. `undefined` for any other error: the framework's
 * own handling applies. The detail is fixed per status, never the message (it
 * may name servers or values).
 *
 * @example
 * ```ts
 * problemForError(Object.assign(new Error('terminating connection'), { code: '57P01' }))
 * // { status: 503, code: 'DATABASE_UNAVAILABLE', title: 'Database unavailable', ... }
 * ```
 */
export function problemForError(err: unknown): ProblemDetails | undefined {
  const error = asUnavailable(err)
  if (!(error instanceof TenancyError)) return undefined
  return problemFor(error, detailFor(httpStatusOf(error)))
}
