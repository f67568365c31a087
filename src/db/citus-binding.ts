import type { BindingMode } from './binding.js'
import type { Statement } from './pipelined-query.js'

/**
 * The statement that makes Citus forward the `SET LOCAL` binding to every worker
 * the transaction touches. It is transaction-local and set per transaction, in
 * the same pipeline as the binding, so no role option, no session state and no
 * hand setting is needed; on plain PostgreSQL it only sets an unused placeholder.
 *
 * Citus forwards a `SET LOCAL` only while this is `local` at the moment the
 * `SET LOCAL` runs, and only inside a transaction block: it must come after
 * `BEGIN` and before the binding.
 *
 * @internal
 * @example
 * ```ts
 * CITUS_PROPAGATE_SET.text // "set local citus.propagate_set_commands = 'local'"
 * ```
 */
export const CITUS_PROPAGATE_SET: Statement = Object.freeze({
  text: "set local citus.propagate_set_commands = 'local'",
})

/**
 * The statements that bind a transaction, in order: `set_config` is the bind
 * alone; `set_local` is {@link CITUS_PROPAGATE_SET} then the bind.
 *
 * @internal
 * @example
 * ```ts
 * bindSequence('set_local', bindStatement('set_local', 'bigint', 7))
 * // [{ text: "set local citus.propagate_set_commands = 'local'" }, { text: "set local rowtenancy.tenant_id = '7'" }]
 * ```
 */
export function bindSequence(mode: BindingMode, bind: Statement): readonly Statement[] {
  return mode === 'set_local' ? [CITUS_PROPAGATE_SET, bind] : [bind]
}
