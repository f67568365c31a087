import type { TenantId } from '../context/index.js'
import { describeValue } from '../errors/describe-value.js'
import { ConfigError } from '../errors/index.js'
import { normalizeDomain } from '../tenants/index.js'
import type { ResolverContext, TenantLookup, TenantRequest, TenantResolver } from './types.js'

/**
 * How a header or path value names a tenant: by id, by slug, or either (an id
 * when it has the id type's shape, else a slug).
 *
 * @example
 * ```ts
 * fromHeader({ by: 'slug' })
 * ```
 */
export type TenantValueKind = 'id' | 'slug' | 'id-or-slug'

function lookupOf(by: TenantValueKind, value: string): TenantLookup {
  if (by === 'id') return { id: value }
  if (by === 'slug') return { slug: value }
  return { idOrSlug: value }
}

/**
 * The options object of a resolver factory, checked: an object or nothing, only
 * known keys (`fromHeader('X-Org')` or a misspelt key would otherwise be ignored
 * and the default used), strings where strings go, functions where functions go.
 */
function resolverOptions<T extends object>(
  where: string,
  options: unknown,
  shape: Readonly<Record<string, 'string' | 'boolean' | 'function' | 'strings'>>,
  example: string,
): T {
  if (options === undefined) return {} as T
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new ConfigError(
      `${where}: pass an options object such as ${example}, not ${describeValue(options)}.`,
    )
  }
  for (const [key, value] of Object.entries(options)) {
    const kind = shape[key]
    if (kind === undefined) {
      throw new ConfigError(
        `${where}: unknown option ${JSON.stringify(key)}; known options: ${Object.keys(shape).join(', ') || 'none'}.`,
      )
    }
    if (value === undefined) continue
    const ok =
      kind === 'strings'
        ? Array.isArray(value) && value.every((v) => typeof v === 'string')
        : typeof value === kind
    if (!ok) {
      const expected = kind === 'strings' ? 'a list of strings' : `a ${kind}`
      throw new ConfigError(
        `${where}: ${key} must be ${expected}, got ${describeValue(value)} (e.g. ${example}).`,
      )
    }
  }
  return options as T
}

function assertKind(by: unknown, where: string): asserts by is TenantValueKind {
  if (by !== 'id' && by !== 'slug' && by !== 'id-or-slug') {
    throw new ConfigError(
      `${where}: unknown 'by' ${JSON.stringify(by)}; use id, slug or id-or-slug.`,
    )
  }
}

/**
 * Names the tenant by a request header, `X-Tenant-ID` by default, holding an id
 * or a slug. A repeated header arrives joined (`1, 2`) and is refused as malformed.
 *
 * @example
 * ```ts
 * fromHeader() // X-Tenant-ID: 42  or  X-Tenant-ID: acme
 * fromHeader({ name: 'x-org', by: 'slug' })
 * ```
 */
export function fromHeader(options: { name?: string; by?: TenantValueKind } = {}): TenantResolver {
  const { name = 'X-Tenant-ID', by = 'id-or-slug' } = resolverOptions<typeof options>(
    'fromHeader',
    options,
    { name: 'string', by: 'string' },
    "{ name: 'X-Tenant-ID' }",
  )
  assertKind(by, 'fromHeader')
  if (!/^[!#$%&'*+.^_`|~0-9a-z-]+$/i.test(name)) {
    throw new ConfigError(
      `fromHeader: ${JSON.stringify(name)} is not a valid header name; use letters, digits and - (e.g. X-Tenant-ID).`,
    )
  }
  const header = name.toLowerCase()
  return Object.freeze({
    source: 'header',
    describe: `the ${name} header`,
    fromRequest: true,
    resolve(req: TenantRequest) {
      const value = req.header(header)
      return value === undefined ? undefined : lookupOf(by, value)
    },
  })
}

/**
 * Names the tenant by the request's host: a domain in `tenant_domains`, or
 * `<slug>.<baseDomain>` when a base domain is set (hosts listed in `ignore`, and
 * the base domain itself, name no tenant). Reads the `Host` header; behind a
 * trusted proxy pass `header: 'x-forwarded-host'`.
 *
 * @example
 * ```ts
 * fromHost({ baseDomain: 'example.com' }) // acme.example.com -> slug acme; shop.acme.io -> tenant_domains
 * fromHost({ domains: false, baseDomain: 'example.com', ignore: ['www', 'api'] })
 * ```
 */
export function fromHost(
  options: {
    baseDomain?: string
    domains?: boolean
    ignore?: readonly string[]
    header?: string
  } = {},
): TenantResolver {
  const {
    baseDomain,
    domains = true,
    ignore = ['www'],
    header = 'host',
  } = resolverOptions<typeof options>(
    'fromHost',
    options,
    { baseDomain: 'string', domains: 'boolean', ignore: 'strings', header: 'string' },
    "{ baseDomain: 'example.com' }",
  )
  const base = baseDomain === undefined ? undefined : normalizeDomain(baseDomain)
  if (!domains && base === undefined) {
    throw new ConfigError('fromHost: with domains: false, set a baseDomain (e.g. example.com).')
  }
  const ignored = new Set(ignore.map((label) => label.toLowerCase()))
  const name = header.toLowerCase()
  return Object.freeze({
    source: 'host',
    describe: base ? `a <tenant>.${base} host` : 'a tenant domain',
    fromRequest: true,
    async resolve(req: TenantRequest, ctx: ResolverContext) {
      const host = hostName(req.header(name))
      if (host === undefined) return undefined
      // `<slug>.<base>` is the slug's, whatever domain a tenant registered: one tenant's custom
      // domain must not take another tenant's own host.
      const label =
        base !== undefined && host.endsWith(`.${base}`)
          ? host.slice(0, -base.length - 1)
          : undefined
      if (label !== undefined && !label.includes('.')) {
        if (!ignored.has(label)) return { slug: label }
        // An ignored host (www) is the app's own: no tenant_domains row makes it a tenant's.
        return undefined
      }
      // Nor the base domain itself.
      if (host === base) return undefined
      if (domains && isDomain(host)) {
        const tenant = await ctx.store.getByDomain(host)
        if (tenant) return { tenant }
      }
      return undefined
    },
  } satisfies TenantResolver)
}

function isDomain(host: string): boolean {
  try {
    return normalizeDomain(host) === host
  } catch {
    return false
  }
}

/** The host name of a Host header value: lower case, no port; `undefined` for IPs and junk. */
function hostName(value: string | undefined): string | undefined {
  if (value === undefined || value.length === 0 || value.length > 260) return undefined
  const host = value
    .replace(/:\d{1,5}$/, '')
    .replace(/\.$/, '')
    .toLowerCase()
  if (!/^[a-z0-9.-]+$/.test(host) || /^[\d.]+$/.test(host)) return undefined
  return host
}

/**
 * Names the tenant by a path prefix, `/t/<tenant>/...` by default. The route itself
 * keeps the prefix (declare it as `/t/:tenant/notes`).
 *
 * The prefix matches without regard to case by default, as Express routes do
 * (`GET /T/beta/notes` reaches `/t/:tenant/notes`), duplicate slashes read as one
 * (`//t/beta`) and the prefix percent-decoded (`/%74/beta`): a request can never name a tenant
 * in a path the router accepts while this resolver looks away. Under a
 * case-sensitive router (Fastify and Hono by default) this is only stricter: a
 * differently cased prefix still names a tenant, which must agree with the
 * others. `caseSensitive: true` matches the prefix exactly.
 *
 * @example
 * ```ts
 * fromPath() // GET /t/acme/notes
 * fromPath({ prefix: '/orgs', by: 'slug' }) // GET /orgs/acme/notes
 * ```
 */
export function fromPath(
  options: { prefix?: string; by?: TenantValueKind; caseSensitive?: boolean } = {},
): TenantResolver {
  const {
    prefix = '/t',
    by = 'id-or-slug',
    caseSensitive = false,
  } = resolverOptions<typeof options>(
    'fromPath',
    options,
    { prefix: 'string', by: 'string', caseSensitive: 'boolean' },
    "{ prefix: '/orgs' }",
  )
  assertKind(by, 'fromPath')
  const clean = prefix.replace(/\/+$/, '')
  if (!/^(\/[A-Za-z0-9._~-]+)*$/.test(clean)) {
    throw new ConfigError(`fromPath: prefix ${JSON.stringify(prefix)} must look like /t or /orgs.`)
  }
  const start = `${clean}/`
  const wanted = clean.split('/').slice(1)
  const same = caseSensitive
    ? (a: string, b: string) => a === b
    : (a: string, b: string) => a.toLowerCase() === b.toLowerCase()
  return Object.freeze({
    source: 'path',
    describe: `the ${start}<tenant>/ path prefix`,
    fromRequest: true,
    resolve(req: TenantRequest) {
      // Segment by segment, each percent-decoded (a router routes `/%74/beta` to `/t/:tenant`),
      // empty segments left out (one that ignores duplicate slashes routes `//t/beta` there too).
      if (!req.path.startsWith('/')) return undefined
      const segments = req.path
        .split('/')
        .slice(1)
        .filter((s, i, all) => s.length > 0 || i === all.length - 1)
      for (const [i, name] of wanted.entries()) {
        const seg = segments[i]
        if (seg === undefined || !same(decodedOrNot(seg), name)) return undefined
      }
      const segment = segments[wanted.length]
      if (segment === undefined || segment.length === 0) return undefined
      let value: string
      try {
        value = decodeURIComponent(segment)
      } catch {
        value = '\u0000' // malformed percent-encoding: refused as malformed by the checks
      }
      return lookupOf(by, value)
    },
  })
}

/** A path segment percent-decoded; a malformed one as it is. */
function decodedOrNot(segment: string): string {
  try {
    return decodeURIComponent(segment)
  } catch {
    return segment
  }
}

/**
 * Names the tenant by the user's server-side session (the tenant they chose
 * after signing in). The callback reads your session store and returns the id.
 *
 * @example
 * ```ts
 * fromSession((req) => (req.raw as express.Request).session?.tenantId)
 * ```
 */
export function fromSession<Raw = unknown>(
  read: (req: TenantRequest<Raw>) => TenantId | undefined | Promise<TenantId | undefined>,
  options: { by?: TenantValueKind } = {},
): TenantResolver<Raw> {
  if (typeof read !== 'function') {
    throw new ConfigError(
      `fromSession: pass a function (req) => tenant id from your session, not ${describeValue(read)}.`,
    )
  }
  const { by = 'id' } = resolverOptions<typeof options>(
    'fromSession',
    options,
    { by: 'string' },
    "{ by: 'slug' }",
  )
  assertKind(by, 'fromSession')
  return Object.freeze({
    source: 'session',
    describe: 'the session',
    async resolve(req: TenantRequest<Raw>) {
      const value = await read(req)
      if (value === undefined || value === null) return undefined
      return by === 'id' ? { id: value } : lookupOf(by, String(value))
    },
  })
}

/**
 * Names the tenant by the authenticated user's memberships (the `memberships`
 * option): the one tenant they belong to, or the one `pick` chooses. Put it last,
 * as the default when nothing else names a tenant.
 *
 * @example
 * ```ts
 * fromUser() // a user of exactly one tenant needs no header
 * fromUser({ pick: (ids) => ids[0] })
 * ```
 */
export function fromUser(
  options: { pick?: (tenantIds: readonly string[]) => TenantId | undefined } = {},
): TenantResolver {
  const { pick = (ids: readonly string[]) => (ids.length === 1 ? ids[0] : undefined) } =
    resolverOptions<typeof options>(
      'fromUser',
      options,
      { pick: 'function' },
      '{ pick: (ids) => ids[0] }',
    )
  return Object.freeze({
    source: 'user',
    describe: 'your membership of exactly one tenant',
    resolve(_req: TenantRequest, ctx: ResolverContext) {
      if (!ctx.memberships || ctx.memberships.length === 0) return undefined
      const id = pick(ctx.memberships)
      return id === undefined ? undefined : { id }
    },
  })
}
