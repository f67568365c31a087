import type { OperationNode, RootOperationNode } from 'kysely'
import type { CrossTenantScope } from '../context/index.js'

/**
 * What a query was scoped to when it was compiled: one tenant, or an open
 * `withoutTenant` scope (unfiltered).
 *
 * @internal
 */
export type QueryBinding =
  | { readonly tenant: string; readonly scope?: undefined; readonly shared?: undefined }
  | { readonly tenant?: undefined; readonly scope: CrossTenantScope; readonly shared?: undefined }
  | { readonly tenant?: undefined; readonly scope?: undefined; readonly shared: true }

/**
 * The binding of a query compiled with no tenant that names no tenant-aware table.
 *
 * @internal
 */
export const SHARED: QueryBinding = Object.freeze({ shared: true as const })

/**
 * Bookkeeping the TenantPlugin attaches to each root node it returns: which
 * plugin made it, what it was bound to, and the node it was made from.
 *
 * @internal
 */
export interface QueryMeta {
  readonly owner: object
  readonly binding: QueryBinding
  readonly origin: OperationNode
}

/**
 * A non-enumerable symbol property: spreads and Kysely's own node copies never
 * carry it over, so only the exact node the plugin returned has it. (A property
 * instead of a WeakMap: WeakMap entries for short-lived keys make GC slow.)
 */
const META: unique symbol = Symbol('rowtenancy.query')

/**
 * A frozen copy of `node` carrying `meta`.
 *
 * @internal
 */
export function withMeta(node: RootOperationNode, meta: QueryMeta): RootOperationNode {
  const copy = { ...node }
  Object.defineProperty(copy, META, { value: meta })
  return Object.freeze(copy) as RootOperationNode
}

/**
 * The bookkeeping of a node the plugin returned, if it is one.
 *
 * @internal
 */
export function metaOf(node: OperationNode): QueryMeta | undefined {
  return (node as { [META]?: QueryMeta })[META]
}
