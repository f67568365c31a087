/**
 * Hostile code: AsyncLocalStorage edge cases (no database): timers, EventEmitter
 * listeners, thenables, a server created under a top-level tenant.
 */
import { EventEmitter } from 'node:events'
import { describe, expect, it } from 'vitest'
import { runWithTenant, tryCurrentTenant } from '../src/context/index.js'

describe('context edges', () => {
  it('a timer created inside tenant 1 fires with tenant 1 (never another)', async () => {
    const seen = await new Promise((resolve) => {
      runWithTenant('1', () => setTimeout(() => resolve(tryCurrentTenant()), 5))
      runWithTenant('2', () => setImmediate(() => {}))
    })
    expect(seen).toBe('1')
  })
  it('an EventEmitter listener registered in tenant 1, emitted from tenant 2: runs as the emitter (Node semantics)', () => {
    const e = new EventEmitter()
    let seen: unknown
    runWithTenant('1', () => e.on('x', () => (seen = tryCurrentTenant())))
    runWithTenant('2', () => e.emit('x'))
    // documents the behaviour: the listener does NOT carry tenant 1
    expect(seen).toBe('2')
  })
  it('a thenable returned to runWithTenant resolves inside the scope', async () => {
    const v = await runWithTenant('1', () => ({
      // biome-ignore lint/suspicious/noThenProperty: a thenable is what this test hands back
      then(res: (v: unknown) => void) {
        setTimeout(() => res(tryCurrentTenant()), 1)
      },
    }))
    expect(v).toBe('1')
  })
})
