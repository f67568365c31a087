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
  const start = pathStart(url)
  if (start === -1) return '/'
  // `http://h?q`: the path is empty (the router sees "/"), the query stays; a fragment is never sent
  if (url[start] === '?') return `/${url.slice(start)}`
  return url[start] === '#' ? '/' : url.slice(start)
}

/**
 * Where an absolute URL's authority ends: its first `/`, `?` or `#` after
 * `scheme://`, -1 when there is none (or no scheme). A `/` inside the query
 * or fragment is not the path's start.
 */
function pathStart(url: string): number {
  const scheme = url.indexOf('://')
  if (scheme === -1) return -1
  for (let i = scheme + 3; i < url.length; i++) {
    const c = url[i]
    if (c === '/' || c === '?' || c === '#') return i
  }
  return -1
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
    if (url.includes('://')) {
      start = pathStart(url)
      if (start === -1 || url[start] !== '/') return '/'
    }
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
 * A header sent more than once reads as its values joined (`a, b`), also the
 * ones Node keeps only the first of (`Host`, `Authorization`...), when
 * `rawHeaders` is given: a proxy in front may have acted on another of them.
 *
 * @example
 * ```ts
 * const view = nodeRequestView(req, req.method, req.originalUrl, req.headers, req.rawHeaders)
 * view.header('X-Tenant-ID')
 * ```
 * @internal
 */
export function nodeRequestView<Raw>(
  raw: Raw,
  method: string,
  url: string,
  headers: IncomingHttpHeaders,
  rawHeaders?: readonly string[],
): TenantRequest<Raw> {
  return {
    method,
    path: pathOf(url),
    url,
    header(name) {
      const key = name.toLowerCase()
      const value = headers[key]
      if (Array.isArray(value)) return value.join(', ')
      return value !== undefined && rawHeaders !== undefined
        ? allValues(rawHeaders, key, value)
        : value
    },
    raw,
  }
}

/** Every value of header `key` in Node's `rawHeaders`, joined; `value` when it came once. */
function allValues(rawHeaders: readonly string[], key: string, value: string): string {
  const found: string[] = []
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!
    if (name.length === key.length && name.toLowerCase() === key) found.push(rawHeaders[i + 1]!)
  }
  return found.length > 1 ? found.join(', ') : value
}
