import { describeValue } from './describe-value.js'

/**
 * The error family of rowtenancy. Every error carries a stable `code` that
 * programs (and the HTTP adapters) switch on, a message that says what was
 * wrong and what to do, and an optional `cause`.
 *
 * @example
 * ```ts
 * try {
 *   currentTenant()
 * } catch (err) {
 *   if (err instanceof TenancyError && err.code === 'MISSING_TENANT') {
 *     // no tenant in context
 *   }
 * }
 * ```
 */
export class TenancyError extends Error {
  /** A stable, machine-readable code, e.g. `MISSING_TENANT`. */
  readonly code: TenancyErrorCode

  constructor(code: TenancyErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = new.target.name
    this.code = code
  }
}

/**
 * Every code a {@link TenancyError} may carry.
 *
 * @example
 * ```ts
 * const code: TenancyErrorCode = 'TENANT_NOT_FOUND'
 * ```
 */
export type TenancyErrorCode =
  | 'MISSING_TENANT'
  | 'TENANT_NOT_FOUND'
  | 'TENANT_SUSPENDED'
  | 'INVALID_TENANT_ID'
  | 'CROSS_TENANT_WRITE'
  | 'TENANT_FORBIDDEN'
  | 'DUPLICATE_TENANT'
  | 'INVALID_INPUT'
  | 'UNSUPPORTED_QUERY'
  | 'CONFIG_ERROR'
  | 'DATABASE_UNREACHABLE'
  | 'DATABASE_UNAVAILABLE'
  | 'UNSAFE_ROLE'
  | 'MIGRATION_ERROR'
  | 'LIFECYCLE_ERROR'
  | 'JOB_REJECTED'
  | 'TENANT_MIGRATING'
  | 'AUDIT_FAILED'

/**
 * Thrown when tenant-scoped work runs with no tenant in context. rowtenancy fails
 * closed: it never falls back to every tenant's rows.
 *
 * @example
 * ```ts
 * await db.selectFrom('accounts').selectAll().execute() // throws MissingTenantError
 * await runWithTenant(7, () => db.selectFrom('accounts').selectAll().execute()) // ok
 * ```
 */
export class MissingTenantError extends TenancyError {
  constructor(what = 'This operation') {
    super(
      'MISSING_TENANT',
      `${what} needs a tenant, but none is set in the current async context. ` +
        'Wrap the work in runWithTenant(tenantId, fn) (or setCurrentTenant(id) in a script/REPL); ' +
        'for deliberate cross-tenant work use withoutTenant(reason, fn) or tenancy.allObjects(reason).',
    )
  }
}

/**
 * Thrown when a tenant id, slug or domain names no tenant.
 *
 * @example
 * ```ts
 * await store.require('999') // TenantNotFoundError: No tenant with id "999". ...
 * ```
 */
export class TenantNotFoundError extends TenancyError {
  /** The id, slug or domain that was looked up. */
  readonly lookup: string
  constructor(lookup: string, by: 'id' | 'slug' | 'domain' | 'id or slug' = 'id') {
    super(
      'TENANT_NOT_FOUND',
      `No tenant with ${by} ${JSON.stringify(lookup)}. ` +
        'Check the value, or list tenants with `rowtenancy tenants list`.',
    )
    this.lookup = lookup
  }
}

/**
 * Thrown when a suspended tenant is used for scoped work or a request.
 *
 * @example
 * ```ts
 * await store.suspend(7)
 * await store.requireActive(7) // TenantSuspendedError
 * ```
 */
export class TenantSuspendedError extends TenancyError {
  constructor(tenant: string) {
    super(
      'TENANT_SUSPENDED',
      `Tenant ${JSON.stringify(tenant)} is suspended. Reactivate it with ` +
        '`rowtenancy tenants activate` (or store.activate(id)) before using it.',
    )
  }
}

/**
 * Thrown when a tenant id does not fit the configured id type (bigint, integer,
 * uuid or text), or is empty, over-long or contains control characters.
 *
 * @example
 * ```ts
 * parseTenantId('bigint', 'abc') // InvalidTenantIdError
 * ```
 */
export class InvalidTenantIdError extends TenancyError {
  constructor(value: unknown, expected: string) {
    super(
      'INVALID_TENANT_ID',
      `Invalid tenant id ${describeValue(value)}: expected ${expected}. ` +
        'Pass the id exactly as stored in tenants.id.',
    )
  }
}

/**
 * Thrown when a write names a tenant other than the current one (an INSERT with
 * another `tenant_id`, or an UPDATE that sets `tenant_id`).
 *
 * @example
 * ```ts
 * await runWithTenant(1, () =>
 *   db.insertInto('accounts').values({ tenant_id: 2, name: 'x' }).execute(),
 * ) // CrossTenantWriteError
 * ```
 */
export class CrossTenantWriteError extends TenancyError {
  constructor(detail: string) {
    super(
      'CROSS_TENANT_WRITE',
      `${detail} Scoped writes may only touch the current tenant; ` +
        'use withoutTenant(reason, fn) or tenancy.allObjects(reason) for deliberate cross-tenant writes.',
    )
  }
}

/**
 * Thrown when an authenticated user asks for a tenant they do not belong to.
 *
 * @example
 * ```ts
 * // X-Tenant-ID: 2 sent by a user whose memberships are [1]
 * // -> 403 with code TENANT_FORBIDDEN
 * ```
 */
export class TenantForbiddenError extends TenancyError {
  constructor(message = 'You may not act for this tenant.') {
    super('TENANT_FORBIDDEN', message)
  }
}

/**
 * Thrown when a tenant slug, id or domain is already taken.
 *
 * @example
 * ```ts
 * await store.create({ slug: 'acme', name: 'Acme' })
 * await store.create({ slug: 'acme', name: 'Other' }) // DuplicateTenantError
 * ```
 */
export class DuplicateTenantError extends TenancyError {
  constructor(what: string, options: { cause?: unknown } = {}) {
    super(
      'DUPLICATE_TENANT',
      `${what} is already taken. Choose another, or look up the existing tenant.`,
      options,
    )
  }
}

/**
 * Thrown for malformed input that is not a tenant id: a bad slug, domain,
 * identifier or option value.
 *
 * @example
 * ```ts
 * normalizeSlug('Not A Slug!') // InvalidInputError
 * ```
 */
export class InvalidInputError extends TenancyError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('INVALID_INPUT', message, options)
  }
}

/**
 * Thrown when a query cannot be scoped safely (for example MERGE, or an UPDATE
 * that sets the tenant column) and is refused rather than run unscoped.
 *
 * @example
 * ```ts
 * db.mergeInto('accounts')... // UnsupportedQueryError under the TenantPlugin
 * ```
 */
export class UnsupportedQueryError extends TenancyError {
  constructor(message: string) {
    super('UNSUPPORTED_QUERY', message)
  }
}

/**
 * Thrown for a bad configuration: an unknown key, a value of the wrong type, a
 * missing database URL.
 *
 * @example
 * ```ts
 * await loadConfig({ file: 'rowtenancy.config.json' }) // ConfigError: unknown key "tabels"
 * ```
 */
export class ConfigError extends TenancyError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('CONFIG_ERROR', message, options)
  }
}

/**
 * Why the database could not serve a piece of work:
 * - `unreachable`: no connection could be opened (refused, DNS, network, server starting or stopping);
 * - `pool-timeout`: no pooled connection came free within the acquire timeout;
 * - `connection-lost`: the connection broke mid-work (server restart, `pg_terminate_backend`, network);
 * - `timeout`: a statement, lock or idle-in-transaction timeout ended the work;
 * - `overloaded`: the server refused more connections (`too_many_connections`);
 * - `tenant-migrating`: the tenant is being cut over by an online migration (its
 *   write fence outlasted the wait, or its placement changed under a cached one).
 *
 * @example
 * ```ts
 * if (err instanceof DatabaseUnavailableError && err.reason === 'pool-timeout') metrics.poolFull++
 * ```
 */
export type UnavailableReason =
  | 'unreachable'
  | 'pool-timeout'
  | 'connection-lost'
  | 'timeout'
  | 'overloaded'
  | 'tenant-migrating'

/**
 * Thrown when the database cannot serve the work right now: unreachable, pool
 * exhausted, connection lost, or a configured timeout hit. Nothing of the work
 * was committed unless it had already been acknowledged; retrying later is safe.
 * The HTTP middleware answers it with `503` problem+json and `Retry-After`.
 *
 * @example
 * ```ts
 * try {
 *   await db.selectFrom('accounts').selectAll().execute()
 * } catch (err) {
 *   if (err instanceof DatabaseUnavailableError) return retryLater(err.reason)
 *   throw err
 * }
 * ```
 */
export class DatabaseUnavailableError extends TenancyError {
  /** What went wrong, in one word. */
  readonly reason: UnavailableReason

  constructor(
    reason: UnavailableReason,
    message: string,
    options: {
      cause?: unknown
      code?: 'DATABASE_UNAVAILABLE' | 'DATABASE_UNREACHABLE' | 'TENANT_MIGRATING'
    } = {},
  ) {
    super(options.code ?? 'DATABASE_UNAVAILABLE', message, options)
    this.reason = reason
  }
}

/**
 * Thrown when the database cannot be reached (a {@link DatabaseUnavailableError}
 * with reason `unreachable`, keeping its own code `DATABASE_UNREACHABLE`).
 *
 * @example
 * ```ts
 * const pool = new pg.Pool({ connectionString: 'postgres://app@localhost:1/app' }) // nothing listens there
 * await withTenantClient(pool, (client) => client.query('select 1'), { tenantId: 7 }) // DatabaseUnreachableError
 * ```
 */
export class DatabaseUnreachableError extends DatabaseUnavailableError {
  constructor(target: string, options: { cause?: unknown } = {}) {
    const why = options.cause instanceof Error ? ` (${options.cause.message})` : ''
    super(
      'unreachable',
      `Cannot connect to the database at ${target}${why}. ` +
        'Check that PostgreSQL is running and that `databaseUrl` / DATABASE_URL is right.',
      { ...options, code: 'DATABASE_UNREACHABLE' },
    )
  }
}

/**
 * Thrown when a tenant is being cut over by an online migration
 * (`migrate-to-row-tenancy --online`): its write fence lasted longer than the
 * fence timeout, or the tenant moved between its legacy schema and the shared
 * tables under a cached placement. Raised before any statement of the work ran;
 * retrying is safe (a {@link DatabaseUnavailableError} with reason
 * `tenant-migrating`, code `TENANT_MIGRATING`: HTTP 503 with `Retry-After`).
 *
 * @example
 * ```ts
 * if (err instanceof TenantMigratingError) return retryAfter(1)
 * ```
 */
export class TenantMigratingError extends DatabaseUnavailableError {
  /** `fenced`: the fence outlasted the wait; `moved`: the placement changed, the next try sees the new one. */
  readonly why: 'fenced' | 'moved'

  constructor(why: 'fenced' | 'moved', options: { cause?: unknown } = {}) {
    super(
      'tenant-migrating',
      why === 'fenced'
        ? 'This tenant is being cut over to the shared tables (online migration) and its writes are fenced; nothing was done. Retry in a moment.'
        : 'This tenant moved between its schema and the shared tables (online migration) since its placement was cached; nothing was done. Retry: the next try uses the new placement.',
      { ...options, code: 'TENANT_MIGRATING' },
    )
    this.why = why
  }
}

/**
 * Thrown when scoped work would run as a role that bypasses Row Level Security
 * (a superuser, the tables' owner, or a BYPASSRLS role).
 *
 * @example
 * ```ts
 * await grantRuntimeRole(ownerPool, { role: 'postgres' }) // UnsafeRoleError: ... "postgres" is a superuser ...
 * ```
 */
export class UnsafeRoleError extends TenancyError {
  constructor(message: string) {
    super('UNSAFE_ROLE', message)
  }
}

/**
 * Thrown by the migration engine for a problem that stops a run (as opposed to a
 * per-tenant failure, which is reported).
 *
 * @example
 * ```ts
 * await migrate({ db: pool, tenantIds: ['999'] }) // MigrationError: Unknown tenant id "999": no legacy tenant has it. ...
 * ```
 */
export class MigrationError extends TenancyError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('MIGRATION_ERROR', message, options)
  }
}

/**
 * Thrown by a tenant lifecycle operation (export, import, erase, move) that
 * refuses its input or cannot finish: a damaged archive, an incompatible schema,
 * a tenant that already exists. Nothing was written (or everything was rolled back).
 *
 * @example
 * ```ts
 * await importTenant({ db: pool, in: 'acme.rtar' }) // LifecycleError: Tenant "7" already exists ...
 * ```
 */
export class LifecycleError extends TenancyError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('LIFECYCLE_ERROR', message, options)
  }
}

/**
 * Thrown when audited cross-tenant work (`withoutTenant`, `allObjects`) ran but
 * its audit record could not be written (audit pool full, connection lost,
 * table gone). Unlike {@link DatabaseUnavailableError} it is not "retry later":
 * the statement's effect stands (a write is committed unless its transaction
 * rolls back), so a blind retry could do it twice. HTTP 500.
 *
 * @example
 * ```ts
 * await allObjects('backfill').updateTable('accounts').set({ flag: true }).execute()
 * // AuditWriteError: The statement ran, but its audit record could not be written ...
 * ```
 */
export class AuditWriteError extends TenancyError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('AUDIT_FAILED', message, options)
  }
}
