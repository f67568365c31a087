import { createHmac } from 'node:crypto'
import type { TransactionSettings } from 'kysely'
import { InvalidInputError, InvalidTenantIdError } from '../errors/index.js'
import { RLS_SETTING } from '../schema/rls-policy.js'
import { assertSealKey, SEAL_BIND_FUNCTION } from '../schema/rls-sealed.js'
import { quoteLiteral } from '../sql/quote.js'
import { parseTenantId, type TenantIdType } from '../tenants/id-types.js'
import { bindSequence } from './citus-binding.js'
import type { Statement } from './pipelined-query.js'

/**
 * How the tenant is bound to a transaction:
 * - `set_config`: `select pg_catalog.set_config('rowtenancy.tenant_id', $1, true)`, the id a
 *   bound parameter (the default on plain PostgreSQL);
 * - `set_local`: `SET LOCAL rowtenancy.tenant_id = '<id>'`, the id validated for
 *   its type and quoted (Citus: `set_config` does not reach the workers, SET LOCAL
 *   does with `citus.propagate_set_commands = 'local'`);
 * - `sealed`: `select public.rowtenancy_seal_bind($1, $2)` with `$2` an HMAC of the
 *   id under the app's `sealKey`; policies made with `rls enable --sealed` honour
 *   only a tenant bound that way in the current transaction (not on Citus).
 *
 * @example
 * ```ts
 * const mode: BindingMode = 'set_config'
 * ```
 */
export type BindingMode = 'set_config' | 'set_local' | 'sealed'

/**
 * A {@link BindingMode}, or `auto`: `set_local` when the `citus` extension is
 * installed, else `set_config`.
 *
 * @example
 * ```ts
 * createTenancy({ pool, tables, binding: 'auto' })
 * ```
 */
export type BindingOption = BindingMode | 'auto'

/** Every {@link BindingOption}. @example `BINDING_OPTIONS.includes('auto')` */
export const BINDING_OPTIONS: readonly BindingOption[] = Object.freeze([
  'set_config',
  'set_local',
  'sealed',
  'auto',
])

/**
 * Checks a binding option.
 *
 * @example
 * ```ts
 * assertBindingOption('set_local') // ok
 * assertBindingOption('session') // InvalidInputError
 * ```
 */
export function assertBindingOption(value: unknown): asserts value is BindingOption {
  if (!BINDING_OPTIONS.includes(value as BindingOption)) {
    throw new InvalidInputError(
      `Unknown binding ${JSON.stringify(value)}: use one of ${BINDING_OPTIONS.join(', ')}.`,
    )
  }
}

/**
 * The statement that binds `tenantId` to the current transaction. The id is
 * validated for `type` first (InvalidTenantIdError, before any SQL is sent);
 * in `set_local` mode it is then quoted by the one literal-quoting helper, and
 * backslashes are refused so the literal means the same whatever
 * `standard_conforming_strings` says.
 *
 * @example
 * ```ts
 * bindStatement('set_config', 'bigint', 7)
 * // { text: "select pg_catalog.set_config('rowtenancy.tenant_id', $1, true)", values: ['7'] }
 * bindStatement('set_local', 'bigint', 7)
 * // { text: "set local rowtenancy.tenant_id = '7'", values: [] }
 * ```
 */
export function bindStatement(
  mode: BindingMode,
  type: TenantIdType,
  tenantId: unknown,
  sealKey?: string,
): Statement {
  const id = parseTenantId(type, tenantId)
  if (mode === 'sealed') {
    assertSealKey(sealKey)
    const mac = createHmac('sha256', sealKey).update(id, 'utf8').digest('hex')
    return Object.freeze({
      text: `select ${SEAL_BIND_FUNCTION}($1, $2)`,
      values: Object.freeze([id, mac]),
    })
  }
  if (mode === 'set_config') {
    return Object.freeze({
      text: `select pg_catalog.set_config(${quoteLiteral(RLS_SETTING)}, $1, true)`,
      values: Object.freeze([id]),
    })
  }
  if (id.includes('\\')) {
    throw new InvalidTenantIdError(tenantId, 'a value without backslashes (SET LOCAL binding)')
  }
  return Object.freeze({ text: `set local ${RLS_SETTING} = ${quoteLiteral(id)}`, values: [] })
}

/**
 * The statements around a single query that is not in a user transaction, sent
 * with it in one round trip. `set_config` needs no BEGIN: the statements before
 * one Sync form one implicit transaction, and a transaction-local setting ends
 * with it (the same for `sealed`). `set_local` wants a real transaction block (and Citus
 * propagates SET LOCAL only inside one), so it gets BEGIN ... COMMIT, with the Citus
 * propagation setting before the bind (see `citus-binding.ts`).
 *
 * @internal
 * @example
 * ```ts
 * implicitScope('set_config', bind) // { before: [bind], after: [] }
 * ```
 */
export function implicitScope(
  mode: BindingMode,
  bind: Statement,
): { before: readonly Statement[]; after: readonly Statement[] } {
  return mode !== 'set_local'
    ? { before: [bind], after: [] }
    : { before: [BEGIN, ...bindSequence(mode, bind)], after: [COMMIT] }
}

const BEGIN: Statement = Object.freeze({ text: 'begin' })
const COMMIT: Statement = Object.freeze({ text: 'commit' })

/**
 * The statement that opens a user transaction with Kysely's settings (already
 * validated by Kysely against its fixed lists).
 *
 * @internal
 * @example
 * ```ts
 * beginStatement({ isolationLevel: 'serializable' }) // { text: 'start transaction isolation level serializable' }
 * ```
 */
export function beginStatement(settings: TransactionSettings = {}): Statement {
  if (!settings.isolationLevel && !settings.accessMode) return BEGIN
  let text = 'start transaction'
  if (settings.isolationLevel) text += ` isolation level ${settings.isolationLevel}`
  if (settings.accessMode) text += ` ${settings.accessMode}`
  return { text }
}
