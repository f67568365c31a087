import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  ConfigError,
  DuplicateTenantError,
  existingIdType,
  InvalidInputError,
  InvalidTenantIdError,
  installTenantTables,
  normalizeDomain,
  normalizeSlug,
  parseTenantId,
  type TenantIdType,
  TenantNotFoundError,
  TenantStore,
  TenantSuspendedError,
} from '../src/entries/index.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'

describe('parseTenantId', () => {
  it('canonicalises and validates per type', () => {
    expect(parseTenantId('bigint', '007')).toBe('7')
    expect(parseTenantId('bigint', 42n)).toBe('42')
    expect(parseTenantId('integer', 5)).toBe('5')
    expect(parseTenantId('uuid', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11')).toBe(
      'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
    )
    expect(parseTenantId('text', 'acme')).toBe('acme')
  })
  it('short canonical integers come back as given; others go through the full check', () => {
    for (const [raw, canonical] of [
      ['0', '0'],
      ['-0', '0'],
      ['-12', '-12'],
      ['999999999', '999999999'],
      ['0999999999', '999999999'],
      ['2147483647', '2147483647'],
      [-7, '-7'],
    ] as const) {
      expect(parseTenantId('integer', raw), String(raw)).toBe(canonical)
      expect(parseTenantId('bigint', raw), String(raw)).toBe(canonical)
    }
    for (const bad of ['+1', '1.0', '1e3', ' 1', '-', '2147483648']) {
      expect(() => parseTenantId('integer', bad), bad).toThrow(InvalidTenantIdError)
    }
  })
  it('rejects malformed ids before any SQL', () => {
    for (const [type, bad] of [
      ['bigint', 'abc'],
      ['bigint', '1; drop table tenants'],
      ['bigint', '9223372036854775808'],
      ['integer', '2147483648'],
      ['uuid', 'not-a-uuid'],
      ['text', 'a\nb'],
      ['text', ''],
    ] as const) {
      expect(() => parseTenantId(type, bad), `${type} ${bad}`).toThrow(InvalidTenantIdError)
    }
  })
})

describe('slug and domain normalisation', () => {
  it('normalises slugs and rejects bad ones with a suggestion', () => {
    expect(normalizeSlug(' Acme ')).toBe('acme')
    expect(() => normalizeSlug('acme corp')).toThrow(/"acme-corp"/)
    expect(() => normalizeSlug('-x')).toThrow(InvalidInputError)
  })
  it('normalises domains, IDN to punycode', () => {
    expect(normalizeDomain('Acme.Example.COM.')).toBe('acme.example.com')
    expect(normalizeDomain('bücher.example')).toBe('xn--bcher-kva.example')
    for (const bad of ['http://x.com', 'x.com:80', 'a b.com', 'localhost', '*.x.com', '']) {
      expect(() => normalizeDomain(bad), bad).toThrow(InvalidInputError)
    }
  })
})

describe('TenantStore', () => {
  let db: TestDatabase
  let store: TenantStore
  beforeAll(async () => {
    db = await createTestDatabase('tenants')
    await installTenantTables(db.pool)
    await installTenantTables(db.pool) // idempotent
    store = new TenantStore({ db: db.pool, ttlMs: 60_000 })
  })
  afterAll(() => db.drop())

  it('creates, reads by id / slug / domain, lists', async () => {
    const acme = await store.create({ slug: 'Acme', name: 'Acme', domains: ['ACME.example.com'] })
    expect(acme).toMatchObject({ slug: 'acme', status: 'active', domains: ['acme.example.com'] })
    expect((await store.get(acme.id))?.slug).toBe('acme')
    expect((await store.getBySlug('acme'))?.id).toBe(acme.id)
    expect((await store.getByDomain('acme.example.com'))?.id).toBe(acme.id)
    expect((await store.find(acme.id))?.id).toBe(acme.id)
    expect((await store.find('acme'))?.id).toBe(acme.id)
    expect(await store.get('999999')).toBeUndefined()
    expect((await store.list()).map((t) => t.slug)).toContain('acme')
  })

  it('refuses duplicates and writes nothing', async () => {
    await store.create({ slug: 'dup', name: 'Dup', domains: ['dup.example.com'] })
    await expect(store.create({ slug: 'dup', name: 'Again' })).rejects.toThrow(DuplicateTenantError)
    await expect(
      store.create({ slug: 'dup2', name: 'Dup2', domains: ['dup.example.com'] }),
    ).rejects.toThrow(/The domain "dup.example.com" is already taken/)
    expect(await store.getBySlug('dup2')).toBeUndefined()
  })

  it('suspends and activates, invalidating the cache', async () => {
    const t = await store.create({ slug: 'sus', name: 'Sus' })
    await store.requireActive(t.id)
    await store.suspend(t.id)
    await expect(store.requireActive(t.id)).rejects.toThrow(TenantSuspendedError)
    await store.activate(t.id)
    expect((await store.requireActive(t.id)).status).toBe('active')
  })

  it('caches lookups: a burst costs one query per TTL', async () => {
    const t = await store.create({ slug: 'burst', name: 'Burst' })
    const before = store.lookupQueries
    await Promise.all(Array.from({ length: 200 }, () => store.get(t.id)))
    expect(store.lookupQueries - before).toBe(1)
  })

  it('deletes, and says so for unknown ids', async () => {
    const t = await store.create({ slug: 'gone', name: 'Gone', domains: ['gone.example.com'] })
    await store.delete(t.id)
    expect(await store.get(t.id)).toBeUndefined()
    await expect(store.delete(t.id)).rejects.toThrow(TenantNotFoundError)
    await expect(store.suspend('12345678')).rejects.toThrow(TenantNotFoundError)
  })

  it('refuses to delete a tenant that still owns rows', async () => {
    const t = await store.create({ slug: 'owner', name: 'Owner' })
    await db.pool.query(
      'create table notes (tenant_id bigint not null references tenants(id), id int, primary key (tenant_id, id))',
    )
    await db.pool.query('insert into notes values ($1, 1)', [t.id])
    await expect(store.delete(t.id)).rejects.toThrow(/still owns rows/)
    expect(await store.get(t.id)).toBeDefined()
  })

  it('rejects malformed ids', async () => {
    await expect(store.get('abc')).rejects.toThrow(InvalidTenantIdError)
    expect(() => store.peek('abc')).toThrow(InvalidTenantIdError)
  })

  it('peek answers from the cache only: a found tenant, until a change invalidates it', async () => {
    const t = await store.create({ slug: 'peek', name: 'Peek' })
    store.invalidate()
    expect(store.peek(t.id)).toBeUndefined()
    const before = store.lookupQueries
    expect(store.peek(t.id)).toBeUndefined() // no query of its own
    expect(store.lookupQueries).toBe(before)
    const found = await store.get(t.id)
    expect(store.peek(t.id)).toBe(found)
    expect(store.peek(`00${t.id}`)).toBe(found)
    await store.suspend(t.id) // invalidates, then reads the tenant back
    expect(store.peek(t.id)?.status).toBe('suspended')
    store.invalidate()
    expect(store.peek(t.id)).toBeUndefined()
    await store.get('999998')
    expect(store.peek('999998')).toBeUndefined() // misses are not peeked
    const uncached = new TenantStore({ db: db.pool, ttlMs: 0 })
    await uncached.get(t.id)
    expect(uncached.peek(t.id)).toBeUndefined()
  })
})

describe.each(['uuid', 'integer', 'text'] as TenantIdType[])('tenants with %s ids', (idType) => {
  let db: TestDatabase
  beforeAll(async () => {
    db = await createTestDatabase(`tenants_${idType}`)
  })
  afterAll(() => db.drop())

  it('installs and round-trips', async () => {
    await installTenantTables(db.pool, { idType })
    expect(await existingIdType(db.pool)).toBe(idType)
    const store = new TenantStore({ db: db.pool, idType })
    const id = idType === 'text' ? 'acme-corp' : undefined
    const t = await store.create({ id, slug: 'acme', name: 'Acme' })
    expect((await store.get(t.id))?.slug).toBe('acme')
    await expect(installTenantTables(db.pool, { idType: 'bigint' })).rejects.toThrow(ConfigError)
  })
})
