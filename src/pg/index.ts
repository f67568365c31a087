import type pg from 'pg'
import { currentTenant, type TenantId } from '../context/index.js'
import { bindStatement } from '../db/binding.js'
import { type BindingOptions, resolveBindingOptions } from '../db/binding-options.js'
import { withBoundClient } from '../db/bound-client.js'
import { enterStatement } from '../db/hybrid-binding.js'
import { carriesTimeouts, withTimeouts } from '../db/unavailable.js'
import { ConfigError } from '../errors/index.js'
import { acquire } from '../sql/acquire.js'
import { DEFAULTS } from '../sql/defaults.js'
import { asUnavailable, guardPoolErrors } from '../sql/unavailable.js'
import { parseTenantId } from '../tenants/id-types.js'

export { AuditedPool, type AuditedPoolOptions } from './audited-pool.js'
export { TenantPool, type TenantPoolOptions } from './tenant-pool.js'

/**
 * Options of {@link withTenantClient}.
 */
export interface WithTenantClientOptions
  extends Pick<BindingOptions, 'tenantIdType' | 'binding' | 'sealKey' | 'timeouts'> {
  /** The tenant to bind; the current tenant (`currentTenant()`) by default. */
  readonly tenantId?: TenantId | undefined
  /**
   * Hybrid serving during an online migration (see docs/migration.md): the
   * transaction opens with `rowtenancy_enter(tenant, null)`, which serves the
   * tenant from its legacy schema (`search_path`) until its cut-over and from the
   * shared tables after, decided under the tenant's fence. `true`, or
   * `{ schema }` of the serving map (`public` by default). set_config binding only.
   */
  readonly hybrid?: boolean | { readonly schema?: string | undefined } | undefined
}

const citusByPool = new WeakMap<pg.Pool, Promise<boolean>>()

/**
 * Runs `fn` with a client of `pool` inside a transaction bound to a tenant:
 * checkout, `BEGIN` + the binding (sent together, one round trip), `fn(client)`,
 * `COMMIT` (or `ROLLBACK` when `fn` throws), release. Row Level Security then
 * limits every statement `fn` runs to that tenant. `fn` holds a raw client, so
 * whatever its SQL did to the session (SET, SET ROLE, PREPARE, temp tables) is
 * reset in the same round trip as the COMMIT / ROLLBACK: the released client
 * carries nothing into its next checkout (rowtenancy's checkout protocol, see
 * docs/binding.md). Fails closed with `MissingTenantError` (no tenant given or in
 * context) or `InvalidTenantIdError` before checkout.
 *
 * @example
 * ```ts
 * import { withTenantClient } from 'rowtenancy/pg'
 *
 * const rows = await withTenantClient(pool, async (client) => {
 *   const { rows } = await client.query('select * from accounts')
 *   return rows // tenant 7's accounts only
 * }, { tenantId: 7 })
 * ```
 */
export async function withTenantClient<T>(
  pool: pg.Pool,
  fn: (client: pg.PoolClient) => Promise<T>,
  options: WithTenantClientOptions = {},
): Promise<T> {
  const tenantId = options.tenantId ?? currentTenant()
  // Validate (and build) the binding before a connection is taken.
  const { tenantIdType: type, binding, timeouts } = resolveBindingOptions(options)
  parseTenantId(type, tenantId)
  guardPoolErrors(pool)
  const mode =
    binding === 'auto'
      ? (await citusInstalled(pool, timeouts.acquireMs))
        ? 'set_local'
        : 'set_config'
      : binding
  const hybrid = options.hybrid
  if (hybrid && mode !== 'set_config') {
    throw new ConfigError(`withTenantClient: hybrid needs the set_config binding, not ${mode}.`)
  }
  const bind = withTimeouts(
    hybrid
      ? enterStatement(
          hybrid === true ? 'public' : (hybrid.schema ?? DEFAULTS.schema),
          type,
          tenantId,
          null,
        )
      : bindStatement(mode, type, tenantId, options.sealKey),
    timeouts,
  )
  // A tenancy's routing pool (the `placement` option) knows which database the tenant lives in.
  const routed = pool as pg.Pool & { poolFor?: (id: unknown) => Promise<pg.Pool> }
  const target = typeof routed.poolFor === 'function' ? await routed.poolFor(tenantId) : pool
  return withBoundClient(target, bind, mode, fn, {
    acquireMs: timeouts.acquireMs,
    unnamed: carriesTimeouts(timeouts) || Boolean(hybrid),
  })
}

/** Through a checkout bounded by `acquireMs`: a full pool or a down server fails fast here too. */
function citusInstalled(pool: pg.Pool, acquireMs: number): Promise<boolean> {
  let known = citusByPool.get(pool)
  if (!known) {
    known = acquire(pool, acquireMs).then(async (client) => {
      try {
        const r = await client.query(
          `select exists (select 1 from pg_extension where extname = 'citus') as citus`,
        )
        client.release()
        return Boolean(r.rows[0]?.citus)
      } catch (err) {
        client.release(true)
        throw asUnavailable(err)
      }
    })
    known.catch(() => citusByPool.delete(pool))
    citusByPool.set(pool, known)
  }
  return known
}
