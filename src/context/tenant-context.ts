import { AsyncLocalStorage } from 'node:async_hooks'
import { InvalidInputError, InvalidTenantIdError, MissingTenantError } from '../errors/index.js'

/**
 * A tenant id as the application passes it: the `tenants.id` value, as a string
 * (bigint ids arrive from `pg` as strings), a number, or a bigint.
 *
 * @example
 * ```ts
 * const id: TenantId = '42'
 * ```
 */
export type TenantId = string | number | bigint

/**
 * An explicit cross-tenant scope opened by {@link withoutTenant}.
 *
 * @example
 * ```ts
 * withoutTenant('nightly report', () => crossTenantScope()) // { reason: 'nightly report', ... }
 * ```
 */
export interface CrossTenantScope {
  /** Why cross-tenant access is needed; recorded in the audit log. */
  readonly reason: string
  /** Who asked for it, when the caller says so. */
  readonly actor?: string | undefined
  /** The tenant that was in context when the scope opened, if any. */
  readonly outerTenant?: TenantId | undefined
}

interface ContextState {
  readonly tenantId?: TenantId | undefined
  readonly crossTenant?: CrossTenantScope | undefined
  /** True for the states `runWithTenant` / `withoutTenant` open (a callback's scope). */
  readonly scoped?: boolean
}

const storage = new AsyncLocalStorage<ContextState>()
const listeners = new Set<(scope: CrossTenantScope) => void>()
/** `withoutTenant` scopes whose callback has finished: they grant nothing any more. */
const closed = new WeakSet<CrossTenantScope>()

const MAX_ID_LENGTH = 256

/**
 * Checks the shape every tenant id must have whatever its type: not empty, no
 * control characters, at most 256 characters, a safe integer when a number.
 * Type-specific checks (bigint, uuid...) live in `parseTenantId`.
 *
 * @example
 * ```ts
 * assertTenantIdShape('7') // ok
 * assertTenantIdShape('') // InvalidTenantIdError
 * ```
 */
export function assertTenantIdShape(id: unknown): asserts id is TenantId {
  if (typeof id === 'bigint') return
  if (typeof id === 'number') {
    if (!Number.isSafeInteger(id)) throw new InvalidTenantIdError(id, 'a safe integer')
    return
  }
  if (typeof id !== 'string') throw new InvalidTenantIdError(id, 'a string, number or bigint')
  if (id.length === 0 || id.trim() !== id) {
    throw new InvalidTenantIdError(id, 'a non-empty value without surrounding spaces')
  }
  if (id.length > MAX_ID_LENGTH) {
    throw new InvalidTenantIdError(id, `at most ${MAX_ID_LENGTH} characters`)
  }
  if (/[\u0000-\u001f\u007f]/.test(id)) {
    throw new InvalidTenantIdError(id, 'a value without control characters')
  }
}

/**
 * Runs `fn` with `tenantId` as the current tenant. The tenant follows every
 * `await`, timer, and callback started inside `fn`, and is gone when `fn` ends.
 * Nested calls override the outer tenant for their own duration. A lazy
 * thenable `fn` returns (a Drizzle query, a PrismaPromise, a Knex builder) is
 * started inside the scope and comes back as a promise of its result.
 *
 * @example
 * ```ts
 * const rows = await runWithTenant(42, () => db.selectFrom('accounts').selectAll().execute())
 * ```
 */
export function runWithTenant<T>(tenantId: TenantId, fn: () => T): T {
  assertTenantIdShape(tenantId)
  return storage.run({ tenantId, scoped: true }, () => startInScope(fn()))
}

/**
 * A lazy thenable (a Drizzle query, a PrismaPromise, a Knex builder) starts its
 * work only when `then` is called: were that left to the caller's `await`, it
 * would run outside the scope and lose the tenant. It is started here, inside
 * the scope, and its outcome handed on as a promise.
 */
function startInScope<T>(value: T): T {
  if (
    value !== null &&
    typeof value === 'object' &&
    !(value instanceof Promise) &&
    typeof (value as { then?: unknown }).then === 'function'
  ) {
    const thenable = value as unknown as PromiseLike<unknown>
    return new Promise((resolve, reject) => thenable.then(resolve, reject)) as T
  }
  return value
}

/**
 * Runs `fn` in a fresh top-level context, as a script's or REPL line's own:
 * `tenantId` current (or none), and {@link setCurrentTenant} allowed. For the
 * shell, which runs each line this way.
 *
 * @internal
 */
export function runAsTopLevel<T>(tenantId: TenantId | undefined, fn: () => T): T {
  if (tenantId !== undefined) assertTenantIdShape(tenantId)
  return storage.run(tenantId === undefined ? {} : { tenantId }, fn)
}

/**
 * Sets the current tenant for the rest of the current async context. Meant for
 * scripts and the REPL, where there is no callback to wrap; in servers use
 * {@link runWithTenant}.
 *
 * Refused (`InvalidInputError`) inside a `runWithTenant` or `withoutTenant`
 * callback: there it would switch the tenant of everything that shares the
 * callback's context (sibling branches of a `Promise.all`, the caller after an
 * `await`), not just the code after the call. Nest `runWithTenant` instead.
 *
 * @example
 * ```ts
 * setCurrentTenant(42)
 * await db.selectFrom('accounts').selectAll().execute() // tenant 42's accounts
 * ```
 */
export function setCurrentTenant(tenantId: TenantId): void {
  assertTenantIdShape(tenantId)
  assertNotScoped('setCurrentTenant')
  storage.enterWith({ tenantId })
}

function assertNotScoped(what: string): void {
  if (storage.getStore()?.scoped !== true) return
  throw new InvalidInputError(
    `${what}() is refused inside runWithTenant / withoutTenant: it would switch the tenant of ` +
      'every branch sharing this async context, not only the code after it. Use ' +
      'runWithTenant(tenantId, fn) for the work that needs another tenant; keep setCurrentTenant for ' +
      'scripts and the REPL.',
  )
}

/**
 * Clears the tenant set by {@link setCurrentTenant}; scoped work then fails with
 * `MissingTenantError` again.
 *
 * @example
 * ```ts
 * clearCurrentTenant()
 * tryCurrentTenant() // undefined
 * ```
 */
export function clearCurrentTenant(): void {
  assertNotScoped('clearCurrentTenant')
  storage.enterWith({})
}

/**
 * The current tenant id. Throws `MissingTenantError` when there is none: the
 * fail-closed accessor that scoped code should use.
 *
 * @example
 * ```ts
 * runWithTenant('7', () => currentTenant()) // '7'
 * currentTenant() // throws MissingTenantError
 * ```
 */
export function currentTenant(): TenantId {
  const id = storage.getStore()?.tenantId
  if (id === undefined) throw new MissingTenantError()
  return id
}

/**
 * Same as {@link currentTenant}; reads well where the tenant is a precondition.
 *
 * @example
 * ```ts
 * const tenantId = requireTenant()
 * ```
 */
export function requireTenant(): TenantId {
  return currentTenant()
}

/**
 * The current tenant id, or `undefined` when there is none.
 *
 * @example
 * ```ts
 * tryCurrentTenant() ?? 'no tenant'
 * ```
 */
export function tryCurrentTenant(): TenantId | undefined {
  return storage.getStore()?.tenantId
}

/**
 * Runs `fn` in an explicit cross-tenant scope: no tenant is current, and scoped
 * database access inside it reads across tenants. The scope is announced to
 * every listener registered with {@link onCrossTenantScope} (the audit log).
 * `reason` is required and says why.
 *
 * @example
 * ```ts
 * const total = await withoutTenant('monthly revenue report', () =>
 *   db.selectFrom('transactions').select(sql`sum(amount)`.as('total')).executeTakeFirst(),
 * )
 * ```
 */
export function withoutTenant<T>(
  reason: string,
  fn: () => T,
  options: { actor?: string | undefined } = {},
): T {
  if (typeof reason !== 'string' || reason.trim().length === 0) {
    throw new InvalidInputError(
      'withoutTenant(reason, fn) needs a non-empty reason: it is written to the audit log.',
    )
  }
  const scope: CrossTenantScope = Object.freeze({
    reason: reason.trim(),
    actor: options.actor,
    outerTenant: tryCurrentTenant(),
  })
  for (const listener of listeners) listener(scope)
  let result: T
  try {
    result = storage.run({ crossTenant: scope, scoped: true }, () => startInScope(fn()))
  } catch (err) {
    closed.add(scope)
    throw err
  }
  if (isPromiseLike(result)) {
    const close = () => {
      closed.add(scope)
    }
    result.then(close, close)
  } else {
    closed.add(scope)
  }
  return result
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as { then?: unknown } | null)?.then === 'function'
}

/**
 * The cross-tenant scope opened by {@link withoutTenant}, when inside one that
 * is still open: once its callback has returned (or its promise settled), work
 * it left behind (a timer, a stored callback) gets `undefined` here, so it can
 * no longer read across tenants.
 *
 * @example
 * ```ts
 * withoutTenant('export', () => crossTenantScope()?.reason) // 'export'
 * ```
 */
export function crossTenantScope(): CrossTenantScope | undefined {
  const scope = storage.getStore()?.crossTenant
  return scope === undefined || closed.has(scope) ? undefined : scope
}

/**
 * Whether a scope {@link withoutTenant} opened is still open (its callback has
 * not finished).
 *
 * @example
 * ```ts
 * const scope = withoutTenant('export', () => crossTenantScope()!)
 * isScopeOpen(scope) // false
 * ```
 */
export function isScopeOpen(scope: CrossTenantScope): boolean {
  return !closed.has(scope)
}

/**
 * Registers a listener called each time a {@link withoutTenant} scope opens.
 * Returns a function that removes it.
 *
 * @example
 * ```ts
 * const off = onCrossTenantScope((scope) => console.log('cross-tenant:', scope.reason))
 * off()
 * ```
 */
export function onCrossTenantScope(listener: (scope: CrossTenantScope) => void): () => void {
  listeners.add(listener)
  return () => {
    listeners.delete(listener)
  }
}
