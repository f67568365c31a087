/**
 * `options` as pg-boss 10's `send` is handed them: the same options, with every
 * field `send` sets on its copy of them already there, as `send` reads it
 * absent (`priority` 0; the rest `undefined`: the `*Default`s, `expireIn` and
 * `keepUntil` are overwritten, `startAfter` and `singletonSeconds` computed from
 * themselves), so `send` writes them in place instead of adding them. On Node 20
 * (V8 11.3) each field added to a copy made with `{ ...o }` of an object that
 * has fields builds new hidden classes: pg-boss's `send`, which copies its
 * options so and adds ten, took 20-35 µs with any option set against 0.4 µs
 * with none, and a tenant job always has one (its `singletonKey`). Node 24 does
 * not have that cost. What pg-boss stores is the same either way (tested).
 *
 * @internal
 */
export function pgBossSendOptions(options: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {
    // present, `priority` must be an integer to pg-boss; absent it reads as 0
    priority: 'priority' in options ? options.priority : 0,
    retryDelayDefault: options.retryDelayDefault,
    retryLimitDefault: options.retryLimitDefault,
    retryBackoffDefault: options.retryBackoffDefault,
    expireIn: options.expireIn,
    expireInDefault: options.expireInDefault,
    keepUntil: options.keepUntil,
    keepUntilDefault: options.keepUntilDefault,
    startAfter: options.startAfter,
    singletonSeconds: options.singletonSeconds,
  }
  for (const key of Object.keys(options)) {
    if (!Object.hasOwn(out, key) && key !== '__proto__') out[key] = options[key]
  }
  return out
}
