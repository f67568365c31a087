import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { describe, expect, it } from 'vitest'
import { type Queryable, TenantStore } from '../src/entries/index.js'

/**
 * A database stand-in that is a real object (no mock framework): it answers
 * every lookup with no row, or with a tenant built from the value asked for,
 * and counts the queries. The real SQL path is covered by tenants.test.ts; this
 * file is about what the store keeps in memory.
 */
class StubDb implements Queryable {
  queries = 0
  constructor(readonly found: boolean) {}
  async query(_text: string, values: readonly unknown[] = []) {
    this.queries++
    if (!this.found) return { rows: [], rowCount: 0 }
    const v = String(values[0])
    return {
      rows: [
        {
          id: '1',
          slug: v.slice(0, 20),
          name: v,
          status: 'active',
          created_at: new Date(),
          domains: [],
        },
      ],
      rowCount: 1,
    }
  }
}

function gc(): () => void {
  const existing = (globalThis as { gc?: () => void }).gc
  if (existing) return existing
  setFlagsFromString('--expose-gc')
  return runInNewContext('gc') as () => void
}

function heapAfterGc(collect: () => void): number {
  collect()
  collect()
  return process.memoryUsage().heapUsed
}

/** `n` lookups, `batch` at a time (a client spraying requests concurrently). */
async function spray(n: number, batch: number, lookup: (i: number) => Promise<unknown>) {
  for (let start = 0; start < n; start += batch) {
    const work: Promise<unknown>[] = []
    for (let i = start; i < Math.min(n, start + batch); i++) work.push(lookup(i))
    await Promise.all(work)
  }
}

describe('TenantStore cache bounds (resource exhaustion)', () => {
  it('1,000,000 lookups of distinct unknown slugs and domains keep the heap within 20 MB of the start', async () => {
    const collect = gc()
    const db = new StubDb(false)
    const store = new TenantStore({ db })
    const before = heapAfterGc(collect)
    await spray(500_000, 1_000, (i) => store.getBySlug(`nope-${i.toString(36)}-x`))
    await spray(500_000, 1_000, (i) => store.getByDomain(`h${i.toString(36)}.attacker.example`))
    const after = heapAfterGc(collect)
    const growthMb = (after - before) / 1024 / 1024
    console.info(
      `tenant-store bounds: 1,000,000 unknown lookups, heap ${(before / 1048576).toFixed(1)} MB -> ` +
        `${(after / 1048576).toFixed(1)} MB (+${growthMb.toFixed(1)} MB), cache ${JSON.stringify(store.cacheSize)}`,
    )
    expect(db.queries).toBe(1_000_000)
    expect(store.cacheSize.missing).toBeLessThanOrEqual(1_000)
    expect(store.cacheSize.inFlight).toBe(0)
    expect(growthMb).toBeLessThan(20)
  })

  it('found tenants are bounded too (least recently used out first), and a burst for one key is one query', async () => {
    const db = new StubDb(true)
    const store = new TenantStore({ db, maxEntries: 500 })
    await spray(20_000, 500, (i) => store.getBySlug(`t-${i}`))
    expect(store.cacheSize.found).toBe(500)
    const queries = db.queries
    await Promise.all(Array.from({ length: 1_000 }, () => store.getBySlug('burst')))
    expect(db.queries).toBe(queries + 1)
    // Recently used keys stay; the oldest went first.
    await store.getBySlug('t-19999')
    expect(db.queries).toBe(queries + 1)
    await store.getBySlug('t-0')
    expect(db.queries).toBe(queries + 2)
  })

  it('a hit, by get or peek, keeps an entry: the least recently used id goes first, not the first cached', async () => {
    const db = new StubDb(true)
    const store = new TenantStore({ db, maxEntries: 3 })
    for (const id of ['1', '2', '3']) await store.get(id)
    expect(store.peek('1')).toBeDefined()
    await store.get('4') // evicts 2, the least recently used
    expect(['1', '2', '3', '4'].map((id) => store.peek(id) !== undefined)).toEqual([
      true,
      false,
      true,
      true,
    ])
    await store.get('3')
    await store.get('5') // evicts 1: peeked after 3 was cached, but 3 was asked for since
    expect(['1', '3', '4', '5'].map((id) => store.peek(id) !== undefined)).toEqual([
      false,
      true,
      true,
      true,
    ])
    expect(db.queries).toBe(5)
    expect(store.cacheSize.found).toBe(3)
  })

  it('peek takes a cached id as given, parses any other: "007" is 7, a malformed id throws', async () => {
    const store = new TenantStore({ db: new StubDb(true), idType: 'bigint' })
    await store.get('7')
    expect(store.peek('7')).toBeDefined()
    expect(store.peek('007')).toBe(store.peek('7'))
    expect(store.peek(7)).toBe(store.peek('7'))
    expect(store.peek('8')).toBeUndefined()
    for (const bad of [' 7', '7 ', 'seven', '']) {
      expect(() => store.peek(bad), bad).toThrow(/tenant id/i)
    }
  })

  it('a miss flood for one unknown name costs one query per negative TTL', async () => {
    const db = new StubDb(false)
    const store = new TenantStore({ db, negativeTtlMs: 60_000, ttlMs: 60_000 })
    await spray(10_000, 1_000, () => store.getBySlug('ghost'))
    expect(db.queries).toBe(1)
  })

  it('invalidate() drops everything, and a lookup begun before it is not cached after it', async () => {
    const db = new StubDb(false)
    const store = new TenantStore({ db })
    const pending = store.getBySlug('late')
    store.invalidate()
    await pending
    expect(store.cacheSize).toEqual({ found: 0, missing: 0, inFlight: 0 })
    expect(() => new TenantStore({ db, maxEntries: -1 })).toThrow(/maxEntries/)
  })
})
