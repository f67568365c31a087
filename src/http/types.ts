import type { TenantId } from '../context/index.js'
import type { TenancyError } from '../errors/index.js'
import type { Tenant, TenantStore } from '../tenants/index.js'

/**
 * The framework-free view of an HTTP request that resolvers, `skip` and the
 * `memberships` callback read. `raw` is the framework's own object (Express
 * `req`, Fastify `request`, Hono `c`), for reading a session or a verified user.
 *
 * @example
 * ```ts
 * const fromApiKey: TenantResolver = {
 *   source: 'api key',
 *   resolve: (req) => {
 *     const key = req.header('x-api-key')
 *     return key ? { id: tenantOfKey(key) } : undefined
 *   },
 * }
 * ```
 */
export interface TenantRequest<Raw = unknown> {
  /** The HTTP method, upper case. */
  readonly method: string
  /** The URL path as sent (percent-encoded, no query string), e.g. `/t/acme/notes`. */
  readonly path: string
  /** The path and query string as sent, e.g. `/t/acme/notes?page=2`. */
  readonly url: string
  /** A request header by case-insensitive name; repeated headers come joined with `, `. */
  header(name: string): string | undefined
  /** The framework's request object (Express `req`, Fastify `request`, Hono `c`). */
  readonly raw: Raw
}

/**
 * What a resolver found: a value to look up through the `TenantStore`, or a tenant
 * it already looked up. Values are validated (length, control characters, id type)
 * before any lookup.
 *
 * @example
 * ```ts
 * const byId: TenantLookup = { id: '42' }
 * const bySlug: TenantLookup = { slug: 'acme' }
 * const either: TenantLookup = { idOrSlug: 'acme' }
 * ```
 */
export type TenantLookup =
  | { readonly id: TenantId }
  | { readonly slug: string }
  | { readonly idOrSlug: string }
  | { readonly tenant: Tenant | undefined }

/**
 * What a resolver gets besides the request.
 *
 * @example
 * ```ts
 * const resolve = (req: TenantRequest, ctx: ResolverContext) =>
 *   ctx.memberships?.length === 1 ? { id: ctx.memberships[0]! } : undefined
 * ```
 */
export interface ResolverContext {
  /** The cached tenant store of the middleware. */
  readonly store: TenantStore
  /** The authenticated user's tenant ids (canonical text), or `undefined` when anonymous. */
  readonly memberships: readonly string[] | undefined
}

/**
 * One way of naming the tenant of a request. Resolvers run in order and the first
 * that returns a lookup wins. Every later resolver with `fromRequest: true` still
 * runs, and must name the same tenant, or the request is refused with 403 (a Host
 * for one tenant plus a header for another).
 *
 * @example
 * ```ts
 * const fromQuery: TenantResolver = {
 *   source: 'query',
 *   describe: 'the ?tenant= query parameter',
 *   fromRequest: true,
 *   resolve: (req) => {
 *     const value = new URLSearchParams(req.url.split('?')[1]).get('tenant')
 *     return value ? { idOrSlug: value } : undefined
 *   },
 * }
 * ```
 */
export interface TenantResolver<Raw = unknown> {
  /** A short name for problem details and logs, e.g. `header`. */
  readonly source: string
  /** How a client names the tenant this way, for the 400 answer when none is named. */
  readonly describe?: string
  /** True when the client chooses the value (header, host, path): it must agree with the winner. */
  readonly fromRequest?: boolean
  resolve(
    req: TenantRequest<Raw>,
    ctx: ResolverContext,
  ): TenantLookup | undefined | Promise<TenantLookup | undefined>
}

/**
 * Paths, patterns or a predicate for routes that need no tenant (health checks,
 * sign-up). A string matches the path exactly; a string ending in `/*` matches
 * that prefix; a RegExp is tested against the path.
 *
 * @example
 * ```ts
 * const skip: TenantSkip = ['/health', '/public/*', /^\/signup/]
 * const skip2: TenantSkip = (req) => req.method === 'OPTIONS'
 * ```
 */
export type TenantSkip<Raw = unknown> =
  | readonly (string | RegExp)[]
  | ((req: TenantRequest<Raw>) => boolean)

/**
 * The options of `tenant()`: one object, shared by the Express, Fastify and Hono
 * adapters.
 *
 * @example
 * ```ts
 * const options: TenantMiddlewareOptions = {
 *   store: new TenantStore({ db: pool }),
 *   resolvers: [fromHost({ baseDomain: 'example.com' }), fromHeader(), fromUser()],
 *   memberships: (req) => verifiedUser(req)?.tenantIds,
 *   skip: ['/health'],
 * }
 * app.use(tenant(options)) // Express; fastify.register(tenant, options); hono.use(tenant(options))
 * ```
 */
export interface TenantMiddlewareOptions<Raw = unknown> {
  /** Where tenants are looked up (cached per its TTL). */
  readonly store: TenantStore
  /** How the tenant is named, in order; `[fromHeader()]` by default. */
  readonly resolvers?: readonly TenantResolver<Raw>[]
  /**
   * The tenant ids the authenticated user belongs to, or `undefined` for an
   * anonymous request. When it returns an array, only those tenants can be
   * reached. `null` means a signed-in user with no memberships (reaches no
   * tenant), never anonymous; so does `undefined` when `authenticated(req)` says
   * the user is signed in.
   */
  readonly memberships?: (
    req: TenantRequest<Raw>,
  ) => readonly TenantId[] | null | undefined | Promise<readonly TenantId[] | null | undefined>
  /**
   * Whether the request is from a signed-in user. When it returns true, the
   * user is never treated as anonymous: `memberships` returning `null` or
   * `undefined` then means no memberships (403 for every tenant). Give it
   * whenever your memberships lookup can come back empty-handed for a real user.
   */
  readonly authenticated?: (req: TenantRequest<Raw>) => boolean | Promise<boolean>
  /**
   * What an anonymous request (`memberships` returned `undefined`) may do:
   * `'allow'` (default; public tenant sites) reaches any active tenant, `'deny'`
   * answers 403 `TENANT_FORBIDDEN` (the same answer as for a foreign tenant), so an
   * API that forgot to authenticate a route still fails closed. Needs `memberships`.
   */
  readonly anonymous?: 'allow' | 'deny'
  /** Routes that need no tenant. */
  readonly skip?: TenantSkip<Raw>
  /** The longest tenant value accepted from a client (header, host, path); 256 by default. */
  readonly maxValueLength?: number
  /** Called with each refusal before the problem response is sent (for logging). */
  readonly onRefused?: (error: TenancyError, req: TenantRequest<Raw>) => void
}
