import { describe, expect, it } from 'vitest'
import { BindCache } from '../src/db/bind-cache.js'
import { bindStatement } from '../src/db/binding.js'

describe('BindCache (the bind statement memo of the Kysely driver and the tenant pool)', () => {
  const make = (id: unknown) => bindStatement('set_config', 'text', id)

  it('makes each id once; the last id and the others come from the cache', () => {
    const cache = new BindCache()
    let made = 0
    const counted = (id: unknown) => {
      made++
      return make(id)
    }
    const a = cache.get('a', counted)
    const b = cache.get('b', counted)
    expect(cache.get('b', counted)).toBe(b)
    expect(cache.get('a', counted)).toBe(a)
    expect(made).toBe(2)
    expect(a.values).toEqual(['a'])
    expect(b.values).toEqual(['b'])
  })

  it('ids that print alike are different keys: text id "number:7" never answers for 7', () => {
    const cache = new BindCache()
    expect(cache.get('number:7', make).values).toEqual(['number:7'])
    expect(cache.get('x', make).values).toEqual(['x'])
    expect(cache.get(7, make).values).toEqual(['7'])
    expect(cache.get('bigint:7', make).values).toEqual(['bigint:7'])
    expect(cache.get(7n, make).values).toEqual(['7'])
    expect(cache.get('number:7', make).values).toEqual(['number:7'])
  })

  it('a refused id caches nothing; a full cache starts over; clear() forgets the last id too', () => {
    const cache = new BindCache(2)
    const strict = (id: unknown) => bindStatement('set_config', 'bigint', id)
    expect(() => cache.get('x', strict)).toThrow(/integer/)
    expect(() => cache.get('x', strict)).toThrow(/integer/)
    const one = cache.get(1, strict)
    cache.get(2, strict)
    cache.get(3, strict) // full: emptied, then 3 added
    expect(cache.get(1, strict)).not.toBe(one)
    const again = cache.get(1, strict)
    expect(cache.get(1, strict)).toBe(again)
    cache.clear()
    expect(cache.get(1, strict)).not.toBe(again)
  })
})
