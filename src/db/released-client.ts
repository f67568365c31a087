/**
 * The error of a statement sent on a client after its checkout ended.
 *
 * @internal
 */
export function releasedClientError(how: string): Error {
  return new Error(
    `This client was released to the pool ${how}; run its queries while it is checked out.`,
  )
}

/**
 * Answers a `client.query(...)` call that is refused with `err`, as pg reports a failure: to
 * the callback when one is given, as a rejected promise otherwise; a submittable (a cursor, a
 * stream), which expects no promise back, gets the error thrown.
 *
 * @internal
 * @example
 * ```ts
 * return refuseQuery(args, releasedClientError('when its checkout ended'))
 * ```
 */
export function refuseQuery(args: readonly unknown[], err: Error): unknown {
  if (typeof (args[0] as { submit?: unknown } | null)?.submit === 'function') throw err
  const callback = args.at(-1)
  if (typeof callback === 'function') {
    queueMicrotask(() => callback(err))
    return undefined
  }
  return Promise.reject(err)
}
