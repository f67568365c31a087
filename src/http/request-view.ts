import type { IncomingHttpHeaders } from 'node:http'
import type { TenantRequest } from './types.js'

/**
 * The origin-form target (path and query) of a request URL, absolute or not.
 *
 * @example
 * ```ts
 * targetOf('http://127.0.0.1:3000/notes?x=1') // '/notes?x=1'
 * ```
 * @internal
 */
export function targetOf(url: string): string {
  if (url.startsWith('/')) return url
  const scheme = url.indexOf('://')
  const start = scheme === -1 ? -1 : url.indexOf('/', scheme + 3)
  return start === -1 ? '/' : url.slice(start)
}

/**
 * The path of a request URL, absolute (`http://h/p?q`) or origin-form (`/p?q`),
 * still percent-encoded and without query or fragment.
 *
 * @example
 * ```ts
 * pathOf('/t/acme/notes?x=1') // '/t/acme/notes'
 * pathOf('http://127.0.0.1:3000/health') // '/health'
 * ```
 * @internal
 */
export function pathOf(url: string): string {
  let start = 0
  if (!url.startsWith('/')) {
    const scheme = url.indexOf('://')
    start = scheme === -1 ? 0 : url.indexOf('/', scheme + 3)
    if (start === -1) return '/'
  }
  let end = url.length
  const query = url.indexOf('?', start)
  if (query !== -1) end = query
  const hash = url.indexOf('#', start)
  if (hash !== -1 && hash < end) end = hash
  return url.slice(start, end) || '/'
}

/**
 * A {@link TenantRequest} over Node's parsed request headers (Express, Fastify).
 *
 * @example
 * ```ts
 * const view = nodeRequestView(req, req.method, req.originalUrl, req.headers)
 * view.header('X-Tenant-ID')
 * ```
 * @internal
 */
export function nodeRequestView<Raw>(
  raw: Raw,
  method: string,
  url: string,
  headers: IncomingHttpHeaders,
): TenantRequest<Raw> {
  return {
    method,
    path: pathOf(url),
    url,
    header(name) {
      const value = headers[name.toLowerCase()]
      return Array.isArray(value) ? value.join(', ') : value
    },
    raw,
  }
}
