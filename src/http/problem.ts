import type { TenancyError } from '../errors/index.js'
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
