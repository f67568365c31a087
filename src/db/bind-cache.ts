import type { TenantId } from '../context/index.js'
import type { Statement } from './pipelined-query.js'

/** No tenant asked for yet. */
const NO_ID = Symbol('no tenant id')

/**
 * The bind statement of each tenant id, made (and validated) once: the id asked
 * for last is answered without a lookup (most checkouts repeat the previous
 * tenant), others from a map of up to `size` ids, emptied when full. Ids are
 * keys as they are (`'7'`, `7` and `7n` are three keys), so two ids that print
 * alike never share a statement.
 *
 * @internal
 * @example
 * ```ts
 * const binds = new BindCache()
 * const bind = binds.get(7, (id) => bindStatement('set_config', 'bigint', id))
 * ```
 */
export class BindCache {
  readonly #size: number
  readonly #binds = new Map<TenantId, Statement>()
  #lastId: TenantId | typeof NO_ID = NO_ID
  #lastBind: Statement | undefined

  constructor(size = 1024) {
    this.#size = size
  }

  /** The statement of `tenantId`: cached, else `make(tenantId)` (which may throw: nothing is cached then). */
  get(tenantId: TenantId, make: (tenantId: TenantId) => Statement): Statement {
    if (tenantId === this.#lastId && this.#lastBind) return this.#lastBind
    let bind = this.#binds.get(tenantId)
    if (!bind) {
      bind = make(tenantId)
      if (this.#binds.size >= this.#size) this.#binds.clear()
      this.#binds.set(tenantId, bind)
    }
    this.#lastId = tenantId
    this.#lastBind = bind
    return bind
  }

  /** Forgets every statement (the binding mode changed). */
  clear(): void {
    this.#binds.clear()
    this.#lastId = NO_ID
    this.#lastBind = undefined
  }
}
