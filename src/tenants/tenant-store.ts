import { describeValue } from '../errors/describe-value.js'
import {
  ConfigError,
  DuplicateTenantError,
  InvalidInputError,
  TenancyError,
  TenantNotFoundError,
  TenantSuspendedError,
} from '../errors/index.js'
import { acquireMsOption, boundedQueryable } from '../sql/acquire.js'
import { DEFAULTS } from '../sql/defaults.js'
import { inTransaction, type Queryable } from '../sql/queryable.js'
import { quoteIdent, quoteLiteral } from '../sql/quote.js'
import { asUnavailable, guardPoolErrors, unavailableReason } from '../sql/unavailable.js'
import {
  assertTenantIdType,
  parseTenantId,
  type TenantIdType,
  tryParseTenantId,
} from './id-types.js'
import { LruCache } from './lru-cache.js'
import { hasControlCharacters, normalizeDomain, normalizeSlug } from './normalize.js'

/**
 * A tenant as stored in `tenants` (+ its `tenant_domains`). `id` is always the
 * canonical text form of `tenants.id`.
 */
export interface Tenant {
  readonly id: string
  readonly slug: string
  readonly name: string
  readonly status: TenantStatus
  readonly domains: readonly string[]
  readonly createdAt: Date
}

/** A tenant's lifecycle state. @example `const s: TenantStatus = 'suspended'` */
export type TenantStatus = 'active' | 'suspended'

/**
 * Options of a {@link TenantStore}.
 *
 * @example
 * ```ts
 * new TenantStore({ db: pool, idType: 'bigint', ttlMs: 30_000 })
 * ```
 */
export interface TenantStoreOptions {
  readonly db: Queryable
  readonly idType?: TenantIdType
  /** The schema of `tenants` / `tenant_domains`; `public` by default. */
  readonly schema?: string
  /** How long a lookup is cached; 30 s by default, 0 disables the cache. */
  readonly ttlMs?: number
  /** How long a miss (no such tenant) is cached; at most 1 s by default. */
  readonly negativeTtlMs?: number
  /** How many found tenants (per lookup key) are cached at most; 10,000 by default. */
  readonly maxEntries?: number
  /**
   * How many misses are cached at most; 1,000 by default. Misses are keyed by
   * what a client sent (a random Host, a made-up slug), so this bound, not the
   * TTL, is what keeps a flood of unknown names from growing memory.
   */
  readonly maxNegativeEntries?: number
  /**
   * How long a query waits for a connection when `db` is a pool (every
   * connection checked out, or the server slow to accept) before failing with
   * `DatabaseUnavailableError` (reason `pool-timeout`), which the middleware
   * answers with 503 and a job is retried on: 5000 by default, as
   * `timeouts.acquireMs` of `createTenancy`; 0 waits forever. A cached lookup
   * takes no connection.
   */
  readonly acquireMs?: number
}

/**
 * What {@link TenantStore.create} takes.
 *
 * @example
 * ```ts
 * await store.create({ slug: 'acme', name: 'Acme Inc.', domains: ['acme.example.com'] })
 * ```
 */
export interface NewTenant {
  /** Required for `text` ids; generated for the other types when left out. */
  readonly id?: string | number | bigint
  readonly slug: string
  readonly name: string
  readonly status?: TenantStatus
  readonly domains?: readonly string[]
}

/**
 * Reads and changes tenants. Lookups by id, slug and domain are cached for
 * `ttlMs` and concurrent lookups of the same key share one query, so a burst of
 * requests for one tenant costs one database round trip per TTL; every change
 * made through the store invalidates the cache. Both caches are bounded
 * (least recently used out first, expired entries dropped), so lookups of
 * names a client makes up cannot grow memory without limit. Every query waits
 * at most `acquireMs` for a pooled connection; a database that cannot serve
 * the lookup (pool full, unreachable, connection lost) throws
 * `DatabaseUnavailableError`, never "no such tenant", and is not cached.
 *
 * @example
 * ```ts
 * const store = new TenantStore({ db: pool })
 * const acme = await store.create({ slug: 'acme', name: 'Acme' })
 * await store.getByDomain('acme.example.com')
 * await store.suspend(acme.id)
 * ```
 */
export class TenantStore {
  readonly #db: Queryable
  readonly #idType: TenantIdType
  readonly #ttl: number
  readonly #negativeTtl: number
  readonly #tenants: string
  /** `schema.tenants` as a reader writes it, for messages. */
  readonly #tenantsName: string
  readonly #domains: string
  /** Found tenants: the lookup's promise (for `get`) and its value (for `peek`). */
  readonly #found: LruCache<{
    readonly promise: Promise<Tenant | undefined>
    readonly tenant: Tenant
  }>
  readonly #missing: LruCache<Promise<Tenant | undefined>>
  /** Lookups in flight, so a burst for one key shares a query (bounded by the callers waiting). */
  readonly #inFlight = new Map<string, Promise<Tenant | undefined>>()
  /** Bumped by `invalidate`, so a lookup that started before a change is not cached after it. */
  #generation = 0
  #queries = 0

  constructor(options: TenantStoreOptions) {
    checkStoreOptions(options)
    const acquireMs = acquireMsOption(options.acquireMs, 'TenantStore acquireMs')
    this.#db = boundedQueryable(options.db, acquireMs)
    guardPoolErrors(options.db)
    this.#idType = options.idType ?? DEFAULTS.tenantIdType
    this.#ttl = bound(options.ttlMs, 30_000, 'ttlMs')
    this.#negativeTtl = Math.min(bound(options.negativeTtlMs, 1_000, 'negativeTtlMs'), this.#ttl)
    this.#found = new LruCache(bound(options.maxEntries, 10_000, 'maxEntries'))
    this.#missing = new LruCache(bound(options.maxNegativeEntries, 1_000, 'maxNegativeEntries'))
    const schema = quoteIdent(options.schema ?? DEFAULTS.schema)
    this.#tenantsName = `${options.schema ?? DEFAULTS.schema}.tenants`
    this.#tenants = `${schema}."tenants"`
    this.#domains = `${schema}."tenant_domains"`
  }

  /** The configured id type. @example `store.idType // 'bigint'` */
  get idType(): TenantIdType {
    return this.#idType
  }

  /** How many lookup queries reached the database (for tests and benchmarks). @example `store.lookupQueries` */
  get lookupQueries(): number {
    return this.#queries
  }

  /**
   * The tenant with this id, or `undefined`. A malformed id throws `InvalidTenantIdError`.
   *
   * @example
   * ```ts
   * await store.get('42')
   * ```
   */
  async get(id: unknown): Promise<Tenant | undefined> {
    const key = parseTenantId(this.#idType, id)
    return this.#cached(`id:${key}`, `t.id = $1`, key)
  }

  /**
   * The tenant with this id when an earlier lookup found it and it is still
   * cached, else `undefined` (then `get` it): no query and no promise, for hot
   * paths that run per job or per request. A malformed id throws `InvalidTenantIdError`.
   *
   * @example
   * ```ts
   * const tenant = store.peek('42') ?? (await store.get('42'))
   * ```
   */
  peek(id: unknown): Tenant | undefined {
    const now = Date.now()
    // Every cached id is canonical, so a string equal to one needs no parsing.
    if (typeof id === 'string') {
      const found = this.#found.get(`id:${id}`, now)
      if (found !== undefined) return found.tenant
    }
    return this.#found.get(`id:${parseTenantId(this.#idType, id)}`, now)?.tenant
  }

  /**
   * The tenant with this slug, or `undefined`. A malformed slug throws `InvalidInputError`.
   *
   * @example
   * ```ts
   * await store.getBySlug('acme')
   * ```
   */
  async getBySlug(slug: string): Promise<Tenant | undefined> {
    const key = normalizeSlug(slug)
    return this.#cached(`slug:${key}`, 't.slug = $1', key)
  }

  /**
   * The tenant that owns this domain, or `undefined`.
   *
   * @example
   * ```ts
   * await store.getByDomain('acme.example.com')
   * ```
   */
  async getByDomain(domain: string): Promise<Tenant | undefined> {
    const key = normalizeDomain(domain)
    return this.#cached(
      `domain:${key}`,
      `t.id = (select d.tenant_id from ${this.#domains} d where d.domain = $1)`,
      key,
    )
  }

  /**
   * Looks a value up as an id when it has the id type's shape, else as a slug.
   *
   * @example
   * ```ts
   * await store.find('42') // by id
   * await store.find('acme') // by slug
   * ```
   */
  async find(idOrSlug: string): Promise<Tenant | undefined> {
    const id = tryParseTenantId(this.#idType, idOrSlug)
    if (id !== undefined) {
      const byId = await this.get(id)
      if (byId || this.#idType !== 'text') return byId
    }
    let slug: string
    try {
      slug = normalizeSlug(idOrSlug)
    } catch (err) {
      if (id !== undefined) return undefined
      throw err
    }
    return this.getBySlug(slug)
  }

  /**
   * The tenant with this id; throws `TenantNotFoundError` when there is none.
   *
   * @example
   * ```ts
   * const t = await store.require('42')
   * ```
   */
  async require(id: unknown): Promise<Tenant> {
    const tenant = await this.get(id)
    if (!tenant) throw new TenantNotFoundError(String(id))
    return tenant
  }

  /**
   * The tenant with this id, which must be active; throws `TenantNotFoundError`
   * or `TenantSuspendedError`.
   *
   * @example
   * ```ts
   * await store.requireActive('42')
   * ```
   */
  async requireActive(id: unknown): Promise<Tenant> {
    const tenant = await this.require(id)
    if (tenant.status !== 'active') throw new TenantSuspendedError(tenant.slug)
    return tenant
  }

  /**
   * All tenants, ordered by id; optionally only those with a status.
   *
   * @example
   * ```ts
   * await store.list({ status: 'active' })
   * ```
   */
  async list(filter: { status?: TenantStatus } = {}): Promise<Tenant[]> {
    const status = filter.status
    if (status !== undefined && status !== 'active' && status !== 'suspended') {
      // an unknown status matches no tenant: an empty list would read as "there are none"
      throw new InvalidInputError(
        `Unknown tenant status ${JSON.stringify(status)}: use active or suspended.`,
      )
    }
    const { rows } = await this.#db
      .query(`${this.#select()} where ($1::text is null or t.status = $1) order by t.id`, [
        filter.status ?? null,
      ])
      .catch((err: unknown) => {
        throw this.#explain(err)
      })
    return rows.map(toTenant)
  }

  /**
   * Creates a tenant and its domains in one transaction. Duplicate ids, slugs or
   * domains throw `DuplicateTenantError` and write nothing.
   *
   * @example
   * ```ts
   * await store.create({ slug: 'acme', name: 'Acme', domains: ['acme.example.com'] })
   * ```
   */
  async create(input: NewTenant): Promise<Tenant> {
    const slug = normalizeSlug(input.slug)
    const name = tenantName(input.name)
    const status = input.status ?? 'active'
    if (status !== 'active' && status !== 'suspended') {
      throw new InvalidInputError(
        `Unknown tenant status ${JSON.stringify(status)}: use active or suspended.`,
      )
    }
    const domains = [...new Set((input.domains ?? []).map(normalizeDomain))]
    if (input.id === undefined && this.#idType === 'text') {
      throw new InvalidInputError('Tenant ids are text here: give the new tenant an `id`.')
    }
    const id = input.id === undefined ? undefined : parseTenantId(this.#idType, input.id)
    const created = await this.#write(async (tx) => {
      const { rows } = await tx.query(
        id === undefined
          ? `insert into ${this.#tenants} (slug, name, status) values ($1, $2, $3) returning id`
          : `insert into ${this.#tenants} (id, slug, name, status) values ($4, $1, $2, $3) returning id`,
        id === undefined ? [slug, name, status] : [slug, name, status, id],
      )
      const newId = String(rows[0].id)
      for (const [i, domain] of domains.entries()) {
        await tx.query(
          `insert into ${this.#domains} (tenant_id, domain, is_primary) values ($1, $2, $3)`,
          [newId, domain, i === 0],
        )
      }
      return newId
    }).catch((err: unknown) => {
      throw id === undefined ? this.#generatedIdTaken(err) : err
    })
    return (await this.#load('t.id = $1', created))!
  }

  /**
   * Renames a tenant or changes its slug.
   *
   * @example
   * ```ts
   * await store.update('42', { name: 'Acme GmbH' })
   * ```
   */
  async update(id: unknown, changes: { slug?: string; name?: string }): Promise<Tenant> {
    const key = parseTenantId(this.#idType, id)
    const slug = changes.slug === undefined ? null : normalizeSlug(changes.slug)
    const name = changes.name === undefined ? null : tenantName(changes.name)
    await this.#write(async (tx) => {
      const { rowCount } = await tx.query(
        `update ${this.#tenants} set slug = coalesce($2, slug), name = coalesce($3, name) where id = $1`,
        [key, slug, name],
      )
      if (!rowCount) throw new TenantNotFoundError(key)
    })
    return this.require(key)
  }

  /**
   * Suspends a tenant: middleware then answers 403 for it.
   *
   * @example
   * ```ts
   * await store.suspend('42')
   * ```
   */
  async suspend(id: unknown): Promise<Tenant> {
    return this.#setStatus(id, 'suspended')
  }

  /**
   * Reactivates a suspended tenant.
   *
   * @example
   * ```ts
   * await store.activate('42')
   * ```
   */
  async activate(id: unknown): Promise<Tenant> {
    return this.#setStatus(id, 'active')
  }

  /**
   * Adds a domain to a tenant.
   *
   * @example
   * ```ts
   * await store.addDomain('42', 'acme.example.com')
   * ```
   */
  async addDomain(
    id: unknown,
    domain: string,
    options: { primary?: boolean } = {},
  ): Promise<Tenant> {
    const key = parseTenantId(this.#idType, id)
    const normalized = normalizeDomain(domain)
    await this.#write(async (tx) => {
      await this.#mustExist(tx, key)
      await tx.query(
        `insert into ${this.#domains} (tenant_id, domain, is_primary) values ($1, $2, $3)`,
        [key, normalized, options.primary ?? false],
      )
    })
    return this.require(key)
  }

  /**
   * Removes a domain from a tenant.
   *
   * @example
   * ```ts
   * await store.removeDomain('42', 'acme.example.com')
   * ```
   */
  async removeDomain(id: unknown, domain: string): Promise<Tenant> {
    const key = parseTenantId(this.#idType, id)
    const normalized = normalizeDomain(domain)
    await this.#write(async (tx) => {
      await tx.query(`delete from ${this.#domains} where tenant_id = $1 and domain = $2`, [
        key,
        normalized,
      ])
    })
    return this.require(key)
  }

  /**
   * Deletes a tenant and its domains. A tenant that still owns rows in
   * tenant-aware tables is refused (their foreign keys say so) and nothing changes.
   *
   * @example
   * ```ts
   * await store.delete('42')
   * ```
   */
  async delete(id: unknown): Promise<void> {
    const key = parseTenantId(this.#idType, id)
    await this.#write(async (tx) => {
      const { rowCount } = await tx.query(`delete from ${this.#tenants} where id = $1`, [key])
      if (!rowCount) throw new TenantNotFoundError(key)
    })
  }

  /**
   * Forgets every cached lookup (for changes made outside this store).
   *
   * @example
   * ```ts
   * store.invalidate()
   * ```
   */
  invalidate(): void {
    this.#generation++
    this.#found.clear()
    this.#missing.clear()
    this.#inFlight.clear()
  }

  /** How many lookups are cached (found, missing): for tests and monitoring. @example `store.cacheSize` */
  get cacheSize(): { found: number; missing: number; inFlight: number } {
    return { found: this.#found.size, missing: this.#missing.size, inFlight: this.#inFlight.size }
  }

  async #setStatus(id: unknown, status: TenantStatus): Promise<Tenant> {
    const key = parseTenantId(this.#idType, id)
    await this.#write(async (tx) => {
      const { rowCount } = await tx.query(`update ${this.#tenants} set status = $2 where id = $1`, [
        key,
        status,
      ])
      if (!rowCount) throw new TenantNotFoundError(key)
    })
    return this.require(key)
  }

  async #mustExist(tx: Queryable, key: string): Promise<void> {
    const { rowCount } = await tx.query(`select 1 from ${this.#tenants} where id = $1`, [key])
    if (!rowCount) throw new TenantNotFoundError(key)
  }

  async #write<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    try {
      return await inTransaction(this.#db, fn)
    } catch (err) {
      throw this.#explain(translateError(err))
    } finally {
      this.invalidate()
    }
  }

  #cached(key: string, where: string, value: string): Promise<Tenant | undefined> {
    const now = Date.now()
    const found = this.#found.get(key, now)
    if (found !== undefined) return found.promise
    const missing = this.#missing.get(key, now)
    if (missing !== undefined) return missing
    const pending = this.#inFlight.get(key)
    if (pending !== undefined) return pending
    const generation = this.#generation
    const promise = this.#load(where, value)
    this.#inFlight.set(key, promise)
    promise.then(
      (tenant) => {
        if (this.#inFlight.get(key) === promise) this.#inFlight.delete(key)
        if (generation !== this.#generation || this.#ttl <= 0) return
        const at = Date.now()
        if (tenant) this.#found.set(key, { promise, tenant }, at + this.#ttl)
        else if (this.#negativeTtl > 0) this.#missing.set(key, promise, at + this.#negativeTtl)
      },
      () => {
        if (this.#inFlight.get(key) === promise) this.#inFlight.delete(key)
      },
    )
    return promise
  }

  async #load(where: string, value: string): Promise<Tenant | undefined> {
    this.#queries++
    let rows: Record<string, any>[]
    try {
      ;({ rows } = await this.#db.query(`${this.#select()} where ${where}`, [value]))
    } catch (err) {
      // A failed lookup is not cached: the next request asks again (fresh entries keep serving).
      throw this.#explain(err)
    }
    return rows[0] ? toTenant(rows[0]) : undefined
  }

  /**
   * A generated id that is taken: the id sequence is behind ids inserted by hand
   * (a fixture, an import with explicit ids). Not the caller's input: say how to fix it.
   */
  #generatedIdTaken(err: unknown): unknown {
    const cause = (err as { cause?: { constraint?: string; detail?: string } }).cause
    if (!(err instanceof DuplicateTenantError) || !cause?.constraint?.endsWith('_pkey')) return err
    const taken = /\)=\((.*)\) already exists/s.exec(cause.detail ?? '')?.[1] ?? '?'
    const table = quoteLiteral(this.#tenantsName)
    return new ConfigError(
      `The id the tenants table generated for the new tenant (${JSON.stringify(taken)}) is already taken: ` +
        'its id sequence is behind ids stored by hand. Move it past them ' +
        `(select setval(pg_get_serial_sequence(${table}, 'id'), (select max(id) from ${this.#tenantsName}))), ` +
        'or give the new tenant an explicit `id`. Nothing was created.',
      { cause },
    )
  }

  /**
   * `err` as a rowtenancy error where it has a known meaning: a database that
   * cannot serve (`DatabaseUnavailableError`), or one without the tenants tables
   * (`ConfigError` saying to run `rowtenancy init`, not the raw "relation does not exist").
   */
  #explain(err: unknown): unknown {
    const code = (err as { code?: unknown } | null)?.code
    if (code === '42P01' || code === '3F000') {
      return new ConfigError(
        `There is no ${JSON.stringify(this.#tenantsName)} table in this database (${(err as Error).message}): ` +
          'run rowtenancy init there first, or pass the schema that holds it (--tenants-schema; ' +
          'the `schema` option of TenantStore).',
        { cause: err },
      )
    }
    return asUnavailable(err)
  }

  #select(): string {
    return `select t.id::text as id, t.slug, t.name, t.status, t.created_at,
              coalesce((select array_agg(d.domain order by d.is_primary desc, d.domain)
                          from ${this.#domains} d where d.tenant_id = t.id), '{}') as domains
              from ${this.#tenants} t`
  }
}

function bound(value: unknown, fallback: number, name: string): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new InvalidInputError(
      `TenantStore ${name} must be a whole number >= 0, got ${describeValue(value)}.`,
    )
  }
  return value
}

const STORE_OPTIONS: readonly string[] = [
  'db',
  'idType',
  'schema',
  'ttlMs',
  'negativeTtlMs',
  'maxEntries',
  'maxNegativeEntries',
  'acquireMs',
]

/** Refuses a missing `db`, an unknown option (a typo would be ignored), an unknown id type, a bad schema name. */
function checkStoreOptions(options: TenantStoreOptions): void {
  if (options === null || typeof options !== 'object') {
    throw new InvalidInputError(
      `new TenantStore(options) needs an options object such as { db: pool }, got ${describeValue(options)}.`,
    )
  }
  for (const key of Object.keys(options)) {
    if (!STORE_OPTIONS.includes(key)) {
      throw new InvalidInputError(
        `Unknown TenantStore option ${JSON.stringify(key)}; known options: ${STORE_OPTIONS.join(', ')}.`,
      )
    }
  }
  const db = options.db as { query?: unknown } | null | undefined
  if (!db || typeof db.query !== 'function') {
    throw new InvalidInputError(
      `TenantStore needs db: a pg.Pool (or a client) of the owner role, got ${describeValue(options.db)}.`,
    )
  }
  if (options.idType !== undefined) assertTenantIdType(options.idType)
  if (
    options.schema !== undefined &&
    (typeof options.schema !== 'string' || options.schema === '')
  ) {
    throw new InvalidInputError(
      `TenantStore schema must be the name of the schema that holds tenants (e.g. "public"), got ${describeValue(options.schema)}.`,
    )
  }
}

/** A tenant's display name, trimmed: 1-200 characters, no control characters (they would garble `tenants list`). */
function tenantName(value: unknown): string {
  const name = typeof value === 'string' ? value.trim() : ''
  if (name.length === 0 || name.length > 200 || hasControlCharacters(name)) {
    throw new InvalidInputError(
      `Invalid tenant name ${describeValue(value)}: a tenant name must be 1-200 characters without ` +
        'control characters (line breaks, tabs, escapes), e.g. "Acme Inc.".',
    )
  }
  return name
}

function toTenant(row: Record<string, any>): Tenant {
  return Object.freeze({
    id: String(row.id),
    slug: row.slug,
    name: row.name,
    status: row.status,
    domains: Object.freeze([...(row.domains ?? [])]),
    createdAt: row.created_at,
  })
}

function translateError(err: unknown): unknown {
  if (err instanceof TenancyError) return err
  if (unavailableReason(err) !== undefined) return asUnavailable(err)
  const e = err as { code?: string; constraint?: string; detail?: string; table?: string }
  if (e.code === '23505') {
    const kind = e.constraint?.includes('domain')
      ? 'domain'
      : e.constraint?.includes('slug')
        ? 'slug'
        : 'tenant id'
    // detail: Key (slug)=(acme) already exists.
    const value = /\)=\((.*)\) already exists/s.exec(e.detail ?? '')?.[1]
    const what = value === undefined ? `That ${kind}` : `The ${kind} ${JSON.stringify(value)}`
    return new DuplicateTenantError(what, { cause: err })
  }
  if (e.code === '23503') {
    return new InvalidInputError(
      `The tenant still owns rows (${e.table ?? 'a tenant-aware table'}: ${e.detail ?? 'referenced'}). ` +
        'Delete or move its rows first; rowtenancy never deletes tenant data implicitly.',
      { cause: err },
    )
  }
  if (e.code === '23514') {
    return new InvalidInputError(
      `A tenant value breaks a check constraint: ${e.detail ?? e.constraint}.`,
      { cause: err },
    )
  }
  return err
}
