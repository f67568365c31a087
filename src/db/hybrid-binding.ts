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
  /** The checkout again, the placement read afresh, and its enter statement (a retry after `RTP01`). */
  again(): Promise<{ hybrid: HybridCheckout; bind: Statement }>
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
  enter: (placement: Placement) => Statement,
): Promise<HybridCheckout> {
  const placement = await serving.placementOf(tenantId)
  return {
    placement,
    failed(err) {
      if (movedError(err)) serving.invalidate(tenantId)
    },
    async again() {
      serving.invalidate(tenantId)
      const hybrid = await hybridCheckout(serving, tenantId, enter)
      return { hybrid, bind: enter(hybrid.placement) }
    },
  }
}

/** Whether `err` is (or wraps) `rowtenancy_enter`'s refusal of a stale placement. @internal */
export function movedError(err: unknown): boolean {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, i = 0; e && i < 3; i++) {
    if (e.code === MOVED_SQLSTATE) return true
    e = e.cause as typeof e
  }
  return false
}
