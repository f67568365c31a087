import { parseTenantId, type TenantIdType } from '../tenants/id-types.js'
import { enterSql, MOVED_SQLSTATE, type Placement, type ServingMap } from '../tenants/serving.js'
import type { Statement } from './pipelined-query.js'

/**
 * What a connection checked out for hybrid serving (an online migration under
 * way) knows: the placement its statements are compiled for, and what to do
 * when the database says it moved.
 *
 * @internal
 */
export interface HybridCheckout {
  readonly placement: Placement
  /** Called with every error of the connection; forgets the cached placement on `RTP01`. */
  failed(err: unknown): void
}

/**
 * The bind of a hybrid transaction: `select rowtenancy_enter($1, $2)` with the
 * tenant and the placement the caller compiled for (`null`: raw SQL, valid in
 * either placement; the database decides under the fence).
 *
 * @example
 * ```ts
 * enterStatement('public', 'bigint', 7, 'schema')
 * // { text: 'select "public"."rowtenancy_enter"($1, $2)', values: ['7', 'schema'] }
 * ```
 * @internal
 */
export function enterStatement(
  schema: string,
  type: TenantIdType,
  tenantId: unknown,
  expected: Placement | null,
): Statement {
  return Object.freeze({
    text: enterSql(schema),
    values: Object.freeze([parseTenantId(type, tenantId), expected]),
  })
}

/**
 * The checkout of one hybrid connection for `tenantId`: its placement (from the
 * cached serving map) and the error hook that forgets the cache on a move.
 *
 * @internal
 */
export async function hybridCheckout(
  serving: ServingMap,
  tenantId: unknown,
): Promise<HybridCheckout> {
  const placement = await serving.placementOf(tenantId)
  return {
    placement,
    failed(err) {
      if (movedError(err)) serving.invalidate(tenantId)
    },
  }
}

function movedError(err: unknown): boolean {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, i = 0; e && i < 3; i++) {
    if (e.code === MOVED_SQLSTATE) return true
    e = e.cause as typeof e
  }
  return false
}
