import { InvalidInputError } from '../errors/index.js'

/**
 * A queue-side key of a tenant's job (a graphile-worker `jobKey`, a pg-boss
 * `singletonKey`, a BullMQ `jobId`, deduplication id or job scheduler id)
 * scoped to that tenant: `<tenant>/<key>`, the tenant URI-encoded (so it holds
 * no `/` and the key cannot reach into another tenant's). The queues keep one
 * job per key across all tenants: unscoped, a tenant sending a key another
 * tenant used would replace that tenant's job (graphile-worker), or have its own
 * dropped (pg-boss, BullMQ). A job of a cross-tenant queue (no tenant) keeps its
 * key as given, unless it has a tenant's shape (a `/` after a first part): some
 * keys reach across queues (graphile-worker's `jobKey` is one per database,
 * BullMQ's `parent` names a job on any queue), so a cross-tenant job keyed
 * `7/daily` would replace tenant 7's job or become its child. A key that is not
 * a string is refused.
 *
 * @internal
 */
export function tenantKey(tenant: string | null, key: unknown, what: string): string {
  if (typeof key !== 'string') {
    throw new InvalidInputError(`${what} must be a string, not ${describe(key)}.`)
  }
  if (tenant !== null) return `${encodeURIComponent(tenant)}/${key}`
  if (key.indexOf('/') > 0) {
    throw new InvalidInputError(
      `${what} ${JSON.stringify(key)} of a cross-tenant job has a tenant's shape (<tenant>/<key>, how a ` +
        'tenant job\'s key is stored), so it could name that tenant\'s job. Use another separator than "/" ' +
        'in cross-tenant keys.',
    )
  }
  return key
}

/**
 * The name of a tenant's own named queue or bucket: `<base>:<tenant>`, both
 * URI-encoded, so neither holds a `:` and the name says whose it is (a base
 * `tenant:1` sent by tenant 2 is `tenant%3A1:2`, not tenant 1's `tenant:1:2`).
 * With no tenant (a cross-tenant job) the base alone, encoded: it holds no `:`,
 * so it is no tenant's.
 *
 * @internal
 */
export function tenantQueueName(base: unknown, tenant: string | null): string {
  if (typeof base !== 'string') {
    throw new InvalidInputError(`queueName must be a string, not ${describe(base)}.`)
  }
  const name = encodeURIComponent(base)
  return tenant === null ? name : `${name}:${encodeURIComponent(tenant)}`
}

/**
 * A copy of `options` (its own values, each read once) whose `name` (an
 * option holding a key, when set) is scoped to `tenant` by {@link tenantKey}.
 *
 * @internal
 */
export function withTenantKey<T extends Record<string, unknown>>(
  options: T,
  name: string,
  tenant: string | null,
  what: string,
): T {
  // one read of each value: a getter (or proxy) cannot show one key here and hand the queue another
  const copy = { ...options }
  const key = copy[name]
  if (key === undefined || key === null) return copy
  const scoped = tenantKey(tenant, key, what)
  return scoped === key ? copy : { ...copy, [name]: scoped }
}

/**
 * A queue's options for one job as given (`undefined` or `null`: none), or an
 * `InvalidInputError` naming `what`: options of another shape (a string meant
 * as a key, an array) would otherwise be read as no options, keys and all.
 *
 * @internal
 */
export function jobOptions(
  options: unknown,
  what: string,
): Record<string, unknown> | undefined | null {
  if (options === undefined || options === null) return options
  if (typeof options === 'object' && !Array.isArray(options)) {
    return options as Record<string, unknown>
  }
  throw new InvalidInputError(`${what} must be an object, not ${describe(options)}.`)
}

/**
 * The elements of a caller's list of jobs as a plain array, each read once, by
 * index, or an `InvalidInputError` naming `what`. The adapters seal the copy
 * and send what they sealed: a list whose `map` or iterator is its own (an own
 * property, a subclass) would otherwise choose what is sealed, or send jobs
 * that never were.
 *
 * @internal
 */
export function listOnce<T>(list: readonly T[], what: string): T[] {
  if (!Array.isArray(list)) {
    throw new InvalidInputError(`${what} must be an array, not ${describe(list)}.`)
  }
  const length = list.length
  const copy: T[] = []
  for (let i = 0; i < length; i++) copy.push(list[i]!)
  return copy
}

function describe(value: unknown): string {
  return value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value
}
