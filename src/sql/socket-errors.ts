/**
 * The error codes of Node's sockets (and DNS lookups) that concern a database
 * connection, by what they mean: `unreachable`, the server was never reached;
 * `connection-lost`, an open connection broke. The one list every reader of
 * these codes uses.
 *
 * @example
 * ```ts
 * SOCKET_ERROR_CODES.ECONNREFUSED // 'unreachable'
 * ```
 */
export const SOCKET_ERROR_CODES: Readonly<Record<string, 'unreachable' | 'connection-lost'>> =
  Object.freeze({
    ECONNREFUSED: 'unreachable',
    ENOTFOUND: 'unreachable',
    EAI_AGAIN: 'unreachable',
    EHOSTUNREACH: 'unreachable',
    ENETUNREACH: 'unreachable',
    ETIMEDOUT: 'unreachable',
    ECONNRESET: 'connection-lost',
    EPIPE: 'connection-lost',
  })

/**
 * Whether `code` is one of {@link SOCKET_ERROR_CODES}.
 *
 * @example
 * ```ts
 * isSocketErrorCode('ECONNRESET') // true
 * isSocketErrorCode('ENOSPC')     // false
 * ```
 */
export function isSocketErrorCode(code: string): boolean {
  return Object.hasOwn(SOCKET_ERROR_CODES, code)
}

/**
 * The socket codes that, on a connect attempt, mean the server could not be
 * reached: the `unreachable` ones, and `ECONNRESET` (the server, or a proxy in
 * front of it, closing the socket during the handshake).
 *
 * @example
 * ```ts
 * CONNECT_FAILURE_CODES.has('ECONNRESET') // true
 * ```
 */
export const CONNECT_FAILURE_CODES: ReadonlySet<string> = new Set([
  ...Object.keys(SOCKET_ERROR_CODES).filter((c) => SOCKET_ERROR_CODES[c] === 'unreachable'),
  'ECONNRESET',
])
