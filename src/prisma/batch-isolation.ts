import { AsyncLocalStorage, AsyncResource } from 'node:async_hooks'
import { crossTenantScope, tryCurrentTenant } from '../context/index.js'
import { ConfigError } from '../errors/index.js'

/** Set while a request runs through a client that {@link tenantPrismaExtension} isolated. */
const isolated = new AsyncLocalStorage<true>()

/** The part of Prisma's request batching (`client._requestHandler.dataloader`) this module changes. */
interface PrismaDataLoader {
  options: {
    batchBy(request: object): string | undefined
    singleLoader(request: object): Promise<unknown>
    batchLoader(requests: object[]): Promise<unknown>
    [key: string]: unknown
  }
}

/** Marks a loader function as isolated: patching the same client twice is a no-op. */
const ISOLATED = Symbol('rowtenancy.prisma.isolated')
const scopeIds = new WeakMap<object, number>()
let nextScopeId = 0

/** The binding a request made now gets: one batch never mixes two of them. */
function contextKey(): string {
  const scope = crossTenantScope()
  if (scope !== undefined) {
    let id = scopeIds.get(scope)
    if (id === undefined) {
      id = ++nextScopeId
      scopeIds.set(scope, id)
    }
    return `scope:${id}`
  }
  const tenant = tryCurrentTenant()
  return tenant === undefined ? 'none' : `${typeof tenant}:${String(tenant)}`
}

/**
 * Prisma batches `findUnique` / `findUniqueOrThrow` calls and the queries of a batch
 * `$transaction([...])` made in the same tick, and sends every batch of that tick from
 * the async context of the first call: a tenant's query would run bound to another
 * tenant. Here each batch holds the calls of one tenant (or `withoutTenant` scope)
 * only, and runs in the context of the calls it holds.
 */
function isolateDataLoader(loader: PrismaDataLoader): void {
  const options = loader.options
  if ((options.singleLoader as { [ISOLATED]?: true })[ISOLATED]) return
  const contexts = new WeakMap<object, (fn: () => Promise<unknown>) => Promise<unknown>>()
  const { batchBy, singleLoader, batchLoader } = options
  const inContextOf = (request: object, fn: () => Promise<unknown>): Promise<unknown> => {
    const run = contexts.get(request)
    const marked = () => isolated.run(true, fn)
    return run === undefined ? marked() : run(marked)
  }
  const single = (request: object) => inContextOf(request, () => singleLoader(request))
  Object.defineProperty(single, ISOLATED, { value: true })
  loader.options = {
    ...options,
    batchBy(request: object) {
      const key = batchBy(request)
      if (key === undefined) return undefined
      // Called by the request in its own context: keep that context for the batch.
      contexts.set(
        request,
        AsyncResource.bind((fn: () => Promise<unknown>) => fn()),
      )
      return `${key}\u0000${contextKey()}`
    },
    singleLoader: single,
    batchLoader: (requests: object[]) => inContextOf(requests[0]!, () => batchLoader(requests)),
  }
}

/**
 * The Prisma client extension every client on `tenantPrismaAdapter` needs: it
 * keeps Prisma's request batching (`findUnique` calls of one tick, batch
 * `$transaction([...])`) from sending one tenant's query from another tenant's async
 * context, where it would be bound to that tenant. Without it the tenant adapter
 * refuses every statement (`ConfigError`).
 *
 * @example
 * ```ts
 * const prisma = new PrismaClient({ adapter: tenantPrismaAdapter(tenancy) })
 *   .$extends(tenantPrismaExtension())
 * ```
 */
export function tenantPrismaExtension(): <C>(client: C) => C {
  return (client) => {
    const internals = client as {
      _requestHandler?: { dataloader?: PrismaDataLoader }
      _engine?: { transaction?: (...args: unknown[]) => Promise<unknown> }
    }
    const loader = internals._requestHandler?.dataloader
    const engine = internals._engine
    if (
      loader === undefined ||
      typeof loader.options?.batchBy !== 'function' ||
      typeof loader.options.singleLoader !== 'function' ||
      typeof loader.options.batchLoader !== 'function' ||
      typeof engine?.transaction !== 'function'
    ) {
      throw new ConfigError(
        "tenantPrismaExtension() does not recognise this Prisma client's request batching " +
          '(client._requestHandler.dataloader, client._engine.transaction): this Prisma version is not supported.',
      )
    }
    isolateDataLoader(loader)
    const transaction = engine.transaction
    if (!(transaction as { [ISOLATED]?: true })[ISOLATED]) {
      // An interactive transaction begins in the context of its caller, outside the batching.
      const marked = (...args: unknown[]) =>
        isolated.run(true, () => transaction.apply(engine, args))
      Object.defineProperty(marked, ISOLATED, { value: true })
      engine.transaction = marked
    }
    return client
  }
}

/**
 * Refuses a statement that did not come through a client isolated by
 * {@link tenantPrismaExtension}.
 *
 * @internal
 */
export function assertIsolatedRequest(): void {
  if (isolated.getStore() === true) return
  throw new ConfigError(
    'A Prisma client on tenantPrismaAdapter runs a statement without tenantPrismaExtension(): ' +
      "Prisma's request batching could run it bound to another tenant. Create the client as " +
      'new PrismaClient({ adapter: tenantPrismaAdapter(tenancy) }).$extends(tenantPrismaExtension()).',
  )
}
