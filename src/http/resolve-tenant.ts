import {
  ConfigError,
  DatabaseUnavailableError,
  InvalidTenantIdError,
  MissingTenantError,
  TenancyError,
  TenantForbiddenError,
  TenantNotFoundError,
  TenantSuspendedError,
} from '../errors/index.js'
import { asUnavailable } from '../sql/unavailable.js'
import {
  hasControlCharacters,
  normalizeSlug,
  parseTenantId,
  type Tenant,
  type TenantStore,
} from '../tenants/index.js'
import { type ProblemDetails, problemFor, problemForError } from './problem.js'
import { fromHeader } from './resolvers.js'
import { compileSkip } from './skip.js'
import { httpStatusOf } from './status.js'
import type {
  ResolverContext,
  TenantLookup,
  TenantMiddlewareOptions,
  TenantRequest,
  TenantResolver,
} from './types.js'

/**
 * What the middleware decided for one request: no tenant needed, a checked
 * tenant, or a refusal with its problem document.
 *
 * @example
 * ```ts
 * const outcome = await resolve(request)
 * if (outcome.kind === 'tenant') runWithTenant(outcome.tenant.id, next)
 * ```
 */
export type TenantOutcome =
  | { readonly kind: 'skipped' }
  | { readonly kind: 'tenant'; readonly tenant: Tenant }
  | { readonly kind: 'refused'; readonly error: TenancyError; readonly problem: ProblemDetails }

interface Candidate {
  readonly resolver: TenantResolver<any>
  readonly lookup: TenantLookup
}

const FORBIDDEN = 'You may not act for this tenant, or it does not exist.'
const CONFLICT =
  'The request names more than one tenant (for example a host and a header that disagree). Name one.'

/**
 * Compiles the shared middleware options into one function from a request to a
 * {@link TenantOutcome}: skip, resolve (first match wins; later request-carried
 * matches must agree), validate, look up through the cached store, and check
 * existence, status and membership. The three adapters are thin shells around it.
 *
 * Disclosure rules: an authenticated user (one for whom `memberships` returned an
 * array or `null`, or `authenticated` returned true) gets the same 403 `TENANT_FORBIDDEN` for a tenant outside their
 * memberships whether or not it exists, even when it is suspended; only an
 * anonymous request can tell 404 from 403. Details never echo the value sent.
 *
 * @example
 * ```ts
 * const resolve = createTenantResolution({ store, resolvers: [fromHeader()] })
 * const outcome = await resolve({ method: 'GET', path: '/notes', url: '/notes', header: (n) => headers[n], raw: req })
 * ```
 */
export function createTenantResolution<Raw = unknown>(
  options: TenantMiddlewareOptions<Raw>,
): (req: TenantRequest<Raw>) => Promise<TenantOutcome> {
  const settings = resolutionSettings(options)
  const { store, chain, isSkipped, onRefused } = settings

  const refuse = (req: TenantRequest<Raw>, error: TenancyError, detail: string): TenantOutcome => {
    onRefused?.(error, req)
    return Object.freeze({ kind: 'refused', error, problem: problemFor(error, detail) })
  }

  // The database down, slow or the pool full, in a lookup, a resolver or memberships(req):
  // a 503 refusal (problem+json, Retry-After), never the framework's 500 with a stack.
  return async function resolveTenant(req) {
    try {
      return await resolveOnce(req)
    } catch (err) {
      const unavailable = asUnavailable(err)
      if (!(unavailable instanceof DatabaseUnavailableError)) throw err
      return refuse(req, unavailable, problemForError(unavailable)!.detail)
    }
  }

  async function resolveOnce(req: TenantRequest<Raw>): Promise<TenantOutcome> {
    if (isSkipped(req)) return SKIPPED
    const members = await membershipsOf(req, settings)
    const candidates = await collectCandidates(chain, req, { store, memberships: members })
    if (candidates.length === 0) {
      return refuse(
        req,
        new MissingTenantError('This request'),
        `This route needs a tenant: name it with ${settings.ways || 'the configured resolver'}.`,
      )
    }
    const found = await lookUpCandidates(candidates, settings)
    if ('malformed' in found) {
      const { error, detail } = found.malformed
      return refuse(req, error, detail)
    }
    const decision = decide(found.tenants, members, candidates, settings.anonymous)
    return 'tenant' in decision
      ? { kind: 'tenant', tenant: decision.tenant }
      : refuse(req, decision.error, decision.detail)
  }
}

/** The validated options, with the resolver chain frozen and `skip` compiled. */
interface ResolutionSettings<Raw> {
  readonly store: TenantStore
  /** The store's id type, read once. */
  readonly idType: TenantStore['idType']
  readonly chain: readonly TenantResolver<Raw>[]
  readonly memberships: TenantMiddlewareOptions<Raw>['memberships']
  readonly authenticated: TenantMiddlewareOptions<Raw>['authenticated']
  readonly anonymous: 'allow' | 'deny'
  readonly isSkipped: (req: TenantRequest<Raw>) => boolean
  readonly maxValueLength: number
  readonly onRefused: TenantMiddlewareOptions<Raw>['onRefused']
  /** How a tenant can be named, for the missing-tenant problem. */
  readonly ways: string
}

function resolutionSettings<Raw>(options: TenantMiddlewareOptions<Raw>): ResolutionSettings<Raw> {
  const {
    store,
    resolvers = [fromHeader() as TenantResolver<Raw>],
    memberships,
    authenticated,
    anonymous = 'allow',
    skip,
    maxValueLength = 256,
    onRefused,
  } = options ?? ({} as TenantMiddlewareOptions<Raw>)
  if (!isStore(store)) {
    throw new ConfigError('tenant(): pass { store: new TenantStore({ db: pool }) }.')
  }
  if (!Array.isArray(resolvers) || resolvers.length === 0) {
    throw new ConfigError('tenant(): resolvers must be a non-empty array, e.g. [fromHeader()].')
  }
  for (const r of resolvers) {
    if (typeof r?.resolve !== 'function' || typeof r.source !== 'string') {
      throw new ConfigError(
        'tenant(): each resolver needs a source name and a resolve(req) method.',
      )
    }
  }
  if (anonymous !== 'allow' && anonymous !== 'deny') {
    throw new ConfigError("tenant(): anonymous must be 'allow' or 'deny'.")
  }
  if (authenticated !== undefined && typeof authenticated !== 'function') {
    throw new ConfigError('tenant(): authenticated must be a function (req) => boolean.')
  }
  if (anonymous === 'deny' && memberships === undefined) {
    throw new ConfigError(
      "tenant(): anonymous: 'deny' needs a memberships(req) callback to tell who is signed in.",
    )
  }
  if (!Number.isInteger(maxValueLength) || maxValueLength < 1 || maxValueLength > 4096) {
    throw new ConfigError('tenant(): maxValueLength must be an integer between 1 and 4096.')
  }
  const chain = Object.freeze([...resolvers])
  return {
    store,
    idType: store.idType,
    chain,
    memberships,
    authenticated,
    anonymous,
    isSkipped: compileSkip(skip),
    maxValueLength,
    onRefused,
    ways: chain.flatMap((r) => (r.describe ? [r.describe] : [])).join(', or '),
  }
}

/** The request's memberships as canonical ids; `undefined` for an anonymous request. */
async function membershipsOf<Raw>(
  req: TenantRequest<Raw>,
  settings: ResolutionSettings<Raw>,
): Promise<readonly string[] | undefined> {
  const { authenticated, memberships, idType } = settings
  const signedIn = authenticated === undefined ? false : (await authenticated(req)) === true
  return memberships
    ? canonical(await memberships(req), idType, signedIn)
    : signedIn
      ? []
      : undefined
}

/** First match wins; after it, only request-carried resolvers still run (they must agree). */
async function collectCandidates<Raw>(
  chain: readonly TenantResolver<Raw>[],
  req: TenantRequest<Raw>,
  ctx: ResolverContext,
): Promise<Candidate[]> {
  const candidates: Candidate[] = []
  for (const resolver of chain) {
    if (candidates.length > 0 && !resolver.fromRequest) continue
    const lookup = await resolver.resolve(req, ctx)
    if (lookup !== undefined && lookup !== null) candidates.push({ resolver, lookup })
  }
  return candidates
}

interface Refusal {
  readonly error: TenancyError
  readonly detail: string
}

/** Each candidate's tenant, or the refusal for the first malformed value. */
async function lookUpCandidates<Raw>(
  candidates: readonly Candidate[],
  settings: ResolutionSettings<Raw>,
): Promise<{ tenants: (Tenant | undefined)[] } | { malformed: Refusal }> {
  const tenants: (Tenant | undefined)[] = []
  for (const c of candidates) {
    const value = 'tenant' in c.lookup ? undefined : rawValue(c.lookup)
    if (value !== undefined && !wellFormed(value, settings.maxValueLength))
      return { malformed: malformed(c, value, settings.maxValueLength) }
    try {
      tenants.push(await lookUp(c.lookup, settings.store, settings.idType))
    } catch (err) {
      if (err instanceof TenancyError && httpStatusOf(err) === 400)
        return { malformed: malformed(c, value, settings.maxValueLength, err) }
      throw err
    }
  }
  return { tenants }
}

function malformed(c: Candidate, value: unknown, maxValueLength: number, cause?: unknown): Refusal {
  return {
    error:
      cause instanceof TenancyError && cause.code === 'INVALID_TENANT_ID'
        ? cause
        : new InvalidTenantIdError(value, 'a tenant id or slug'),
    detail:
      `The tenant named by ${c.resolver.describe ?? c.resolver.source} is malformed: give a ` +
      `tenant ${idOrSlugWords(c.lookup)} of at most ${maxValueLength} characters, ` +
      'without spaces or control characters.',
  }
}

async function lookUp(
  lookup: TenantLookup,
  store: TenantStore,
  idType: TenantStore['idType'],
): Promise<Tenant | undefined> {
  if ('tenant' in lookup) return lookup.tenant
  if ('id' in lookup) return store.get(parseTenantId(idType, lookup.id))
  if ('slug' in lookup) return store.getBySlug(normalizeSlug(lookup.slug))
  return store.find(lookup.idOrSlug)
}

/** Agreement, membership, existence and status, in that order (the disclosure rules). */
function decide(
  found: readonly (Tenant | undefined)[],
  members: readonly string[] | undefined,
  candidates: readonly Candidate[],
  anonymous: 'allow' | 'deny',
): { tenant: Tenant } | Refusal {
  const tenant = found[0]
  if (found.length > 1 && found.some((t) => t === undefined || t.id !== tenant?.id)) {
    return { error: new TenantForbiddenError(CONFLICT), detail: CONFLICT }
  }
  if (members === undefined && anonymous === 'deny') {
    return { error: new TenantForbiddenError(FORBIDDEN), detail: FORBIDDEN }
  }
  if (members !== undefined && (tenant === undefined || !members.includes(tenant.id))) {
    return { error: new TenantForbiddenError(FORBIDDEN), detail: FORBIDDEN }
  }
  if (tenant === undefined) {
    const shown = rawValue(candidates[0]!.lookup) ?? ''
    return {
      error: new TenantNotFoundError(shown, 'id or slug'),
      detail: 'No such tenant. Check the tenant id or slug.',
    }
  }
  if (tenant.status !== 'active') {
    return { error: new TenantSuspendedError(tenant.slug), detail: 'This tenant is suspended.' }
  }
  return { tenant }
}

/** A TenantStore, also one from another copy of the package (no instanceof). */
function isStore(store: unknown): store is TenantStore {
  const s = store as Partial<Record<keyof TenantStore, unknown>> | undefined
  return (
    typeof s?.get === 'function' &&
    typeof s.getBySlug === 'function' &&
    typeof s.getByDomain === 'function' &&
    typeof s.find === 'function' &&
    typeof s.idType === 'string'
  )
}

const SKIPPED: TenantOutcome = Object.freeze({ kind: 'skipped' })

function rawValue(lookup: TenantLookup): string | undefined {
  if ('tenant' in lookup) return lookup.tenant?.slug
  if ('id' in lookup) return typeof lookup.id === 'string' ? lookup.id : undefined
  if ('slug' in lookup) return lookup.slug
  return lookup.idOrSlug
}

function idOrSlugWords(lookup: TenantLookup): string {
  if ('id' in lookup) return 'id'
  if ('slug' in lookup) return 'slug'
  return 'id or slug'
}

function wellFormed(value: unknown, max: number): boolean {
  if (typeof value !== 'string') return true // numbers and bigints are checked by parseTenantId
  return (
    value.length > 0 &&
    value.length <= max &&
    value.trim() === value &&
    !hasControlCharacters(value)
  )
}

/**
 * The memberships as canonical ids; `undefined` only for an anonymous request:
 * `null` (a signed-in user with none), or `undefined` for a user `authenticated`
 * says is signed in, is the empty list.
 */
function canonical(
  ids: readonly unknown[] | undefined | null,
  idType: TenantStore['idType'],
  signedIn: boolean,
): readonly string[] | undefined {
  if (ids === null || (ids === undefined && signedIn)) return []
  if (ids === undefined) return undefined
  if (!Array.isArray(ids)) {
    throw new ConfigError(
      'tenant(): memberships(req) must return an array of tenant ids or undefined.',
    )
  }
  const out: string[] = []
  for (const id of ids) {
    try {
      out.push(parseTenantId(idType, id))
    } catch {
      // A membership that is not a valid id can never match: fail closed, keep going.
    }
  }
  return out
}
