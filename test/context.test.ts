import { EventEmitter, once } from 'node:events'
import { Readable, Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, expect, it } from 'vitest'
import {
  clearCurrentTenant,
  crossTenantScope,
  currentTenant,
  InvalidTenantIdError,
  MissingTenantError,
  onCrossTenantScope,
  requireTenant,
  runWithTenant,
  setCurrentTenant,
  tryCurrentTenant,
  withoutTenant,
} from '../src/entries/index.js'

describe('tenant context', () => {
  it('fails closed when no tenant is set', () => {
    expect(() => currentTenant()).toThrow(MissingTenantError)
    expect(() => requireTenant()).toThrow(/runWithTenant/)
    expect(tryCurrentTenant()).toBeUndefined()
  })

  it('survives await', async () => {
    const seen = await runWithTenant('a', async () => {
      await sleep(5)
      await Promise.resolve()
      return currentTenant()
    })
    expect(seen).toBe('a')
    expect(tryCurrentTenant()).toBeUndefined()
  })

  it('keeps Promise.all of different tenants apart', async () => {
    const results = await Promise.all(
      ['t1', 't2', 't3'].map((t, i) =>
        runWithTenant(t, async () => {
          await sleep(10 - i * 3)
          return currentTenant()
        }),
      ),
    )
    expect(results).toEqual(['t1', 't2', 't3'])
  })

  it('follows timers and setImmediate', async () => {
    const seen = await runWithTenant(5, () => {
      return new Promise<unknown[]>((resolve) => {
        const out: unknown[] = []
        setTimeout(() => {
          out.push(currentTenant())
          setImmediate(() => {
            out.push(currentTenant())
            queueMicrotask(() => {
              out.push(currentTenant())
              resolve(out)
            })
          })
        }, 1)
      })
    })
    expect(seen).toEqual([5, 5, 5])
  })

  it('follows EventEmitter callbacks registered inside the scope', async () => {
    const emitter = new EventEmitter()
    const seen: unknown[] = []
    await runWithTenant('ee', async () => {
      emitter.on('tick', () => seen.push(tryCurrentTenant()))
      setTimeout(() => emitter.emit('tick'), 1)
      await once(emitter, 'tick')
    })
    expect(seen).toEqual(['ee'])
  })

  it('follows async iterators and streams', async () => {
    async function* gen() {
      for (let i = 0; i < 3; i++) {
        await sleep(1)
        yield currentTenant()
      }
    }
    const fromIter = await runWithTenant('it', async () => {
      const out: unknown[] = []
      for await (const t of gen()) out.push(t)
      return out
    })
    expect(fromIter).toEqual(['it', 'it', 'it'])

    const fromStream = await runWithTenant('st', async () => {
      const out: unknown[] = []
      await pipeline(
        Readable.from([1, 2, 3]),
        new Transform({
          objectMode: true,
          transform(chunk, _enc, cb) {
            setTimeout(() => cb(null, `${chunk}:${String(currentTenant())}`), 1)
          },
        }),
        async (source) => {
          for await (const c of source) out.push(c)
        },
      )
      return out
    })
    expect(fromStream).toEqual(['1:st', '2:st', '3:st'])
  })

  it('nests, and restores the outer tenant afterwards', async () => {
    await runWithTenant('outer', async () => {
      const inner = await runWithTenant('inner', async () => {
        await sleep(1)
        return currentTenant()
      })
      expect(inner).toBe('inner')
      expect(currentTenant()).toBe('outer')
    })
  })

  it('keeps 1,000 interleaved concurrent tasks apart', async () => {
    const tasks = Array.from({ length: 1000 }, (_, i) => i)
    const mismatches: number[] = []
    await Promise.all(
      tasks.map((i) =>
        runWithTenant(`tenant-${i % 37}`, async () => {
          for (let step = 0; step < 5; step++) {
            if (step % 2) await sleep(Math.floor((i * 7 + step) % 4))
            else await Promise.resolve()
            if (currentTenant() !== `tenant-${i % 37}`) mismatches.push(i)
          }
        }),
      ),
    )
    expect(mismatches).toEqual([])
  })

  it('setCurrentTenant / clearCurrentTenant work for scripts', async () => {
    await new Promise<void>((resolve) => {
      // a fresh async context, as a script's top level would be
      setImmediate(async () => {
        setCurrentTenant(9)
        await sleep(1)
        expect(currentTenant()).toBe(9)
        clearCurrentTenant()
        expect(() => currentTenant()).toThrow(MissingTenantError)
        resolve()
      })
    })
  })

  it('rejects malformed ids', () => {
    for (const bad of ['', ' 1', 'a\u0000b', 'x'.repeat(300), 1.5, Number.NaN, null, {}]) {
      expect(() => runWithTenant(bad as never, () => 1)).toThrow(InvalidTenantIdError)
    }
  })

  it('withoutTenant opens an announced cross-tenant scope with a reason', async () => {
    const announced: string[] = []
    const off = onCrossTenantScope((s) => announced.push(`${s.reason}@${String(s.outerTenant)}`))
    try {
      await runWithTenant('a', () =>
        withoutTenant('report', async () => {
          await sleep(1)
          expect(tryCurrentTenant()).toBeUndefined()
          expect(crossTenantScope()?.reason).toBe('report')
        }),
      )
    } finally {
      off()
    }
    expect(announced).toEqual(['report@a'])
    expect(() => withoutTenant('  ', () => 1)).toThrow(/reason/)
  })
})
