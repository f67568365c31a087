/**
 * One list of Node's socket error codes (src/sql/socket-errors.ts), read by the pool checkout
 * (`isUnreachable`), the unavailable classifier (`unavailableReason`) and the CLI's failure
 * line (`describeFailure`). Pitfall: each kept a copy of its own, and a code added to one was
 * missing from the others. Each reader's answer for each code is pinned here.
 */
import { describe, expect, it } from 'vitest'
import { describeFailure } from '../src/cli/failure.js'
import { isUnreachable } from '../src/sql/acquire.js'
import { CONNECT_FAILURE_CODES, SOCKET_ERROR_CODES } from '../src/sql/socket-errors.js'
import { unavailableReason } from '../src/sql/unavailable.js'

const socketError = (code: string) =>
  Object.assign(new Error(`connect ${code} db.internal:5432`), { code })

describe('socket error codes: one list, each reader', () => {
  it('the list and what each code means', () => {
    expect(SOCKET_ERROR_CODES).toEqual({
      ECONNREFUSED: 'unreachable',
      ENOTFOUND: 'unreachable',
      EAI_AGAIN: 'unreachable',
      EHOSTUNREACH: 'unreachable',
      ENETUNREACH: 'unreachable',
      ETIMEDOUT: 'unreachable',
      ECONNRESET: 'connection-lost',
      EPIPE: 'connection-lost',
    })
    expect([...CONNECT_FAILURE_CODES].sort()).toEqual(
      [
        'ECONNREFUSED',
        'ENOTFOUND',
        'EAI_AGAIN',
        'EHOSTUNREACH',
        'ENETUNREACH',
        'ETIMEDOUT',
        'ECONNRESET',
      ].sort(),
    )
  })

  it.each(Object.entries(SOCKET_ERROR_CODES))(
    '%s: unavailableReason says %s; the CLI gives the network advice',
    (code, meaning) => {
      expect(unavailableReason(socketError(code))).toBe(meaning)
      expect(describeFailure(socketError(code), false)[0]).toMatch(/Check that PostgreSQL runs/)
    },
  )

  it('isUnreachable: the connect failures and cannot_connect_now, not a broken pipe', () => {
    for (const code of CONNECT_FAILURE_CODES)
      expect(isUnreachable(socketError(code)), code).toBe(true)
    expect(isUnreachable({ code: '57P03' })).toBe(true)
    expect(isUnreachable(socketError('EPIPE'))).toBe(false)
    expect(isUnreachable(socketError('ENOSPC'))).toBe(false)
    expect(unavailableReason(socketError('ENOSPC'))).toBeUndefined()
  })
})
