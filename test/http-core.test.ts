import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ConfigError } from '../src/errors/index.js'
import {
  createTenantResolution,
  fromHeader,
  fromHost,
  fromPath,
  type TenantOutcome,
  type TenantRequest,
} from '../src/http/index.js'
import { pathOf, targetOf } from '../src/http/request-view.js'
import { installTenantTables, TenantStore } from '../src/tenants/index.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'

const request = (path: string, headers: Record<string, string> = {}): TenantRequest => ({
  method: 'GET',
  path: pathOf(path),
  url: path,
  header: (name) => headers[name.toLowerCase()],
  raw: undefined,
})

const codeOf = (outcome: TenantOutcome) =>
  outcome.kind === 'refused' ? outcome.problem.code : outcome.kind

describe('http core on uuid tenant ids', () => {
  let db: TestDatabase
  let store: TenantStore
  let acme: string
  beforeAll(async () => {
    db = await createTestDatabase('http_core')
    await installTenantTables(db.pool, { idType: 'uuid' })
    store = new TenantStore({ db: db.pool, idType: 'uuid' })
    acme = (await store.create({ slug: 'acme', name: 'Acme' })).id
  })
  afterAll(() => db.drop())

  it('wrong id type is 400 before any lookup; an upper-case uuid is the same tenant', async () => {
    const resolve = createTenantResolution({ store, resolvers: [fromHeader({ by: 'id' })] })
    const before = store.lookupQueries
    expect(codeOf(await resolve(request('/', { 'x-tenant-id': '42' })))).toBe('INVALID_TENANT_ID')
    expect(store.lookupQueries).toBe(before)
    const outcome = await resolve(request('/', { 'x-tenant-id': acme.toUpperCase() }))
    expect(outcome.kind === 'tenant' && outcome.tenant.slug).toBe('acme')
  })

  it('id-or-slug: a slug-shaped value is a slug, a uuid an id', async () => {
    const resolve = createTenantResolution({ store, resolvers: [fromPath()] })
    for (const path of ['/t/acme/x', `/t/${acme}/x`]) {
      const outcome = await resolve(request(path))
      expect(outcome.kind === 'tenant' && outcome.tenant.id).toBe(acme)
    }
  })

  it('the base domain and the ignored hosts name no tenant, even as a tenant_domains row', async () => {
    // A tenant whose domains include the app's own www / apex host would take every request
    // to it (fromHost's promise: hosts in `ignore`, and the base domain itself, name no tenant).
    await store.create({
      slug: 'grabber',
      name: 'Grabber',
      domains: ['www.example.test', 'example.test', 'shop.grabber.io'],
    })
    const resolve = createTenantResolution({
      store,
      resolvers: [fromHost({ baseDomain: 'example.test' })],
    })
    for (const host of [
      'www.example.test',
      'example.test',
      'WWW.Example.test.',
      'example.test:8080',
    ]) {
      expect(codeOf(await resolve(request('/', { host }))), host).toBe('MISSING_TENANT')
    }
    const own = await resolve(request('/', { host: 'shop.grabber.io' }))
    expect(own.kind === 'tenant' && own.tenant.slug).toBe('grabber')
    const slug = await resolve(request('/', { host: 'acme.example.test' }))
    expect(slug.kind === 'tenant' && slug.tenant.slug).toBe('acme')
  })

  it('memberships that are not valid ids never match (fail closed)', async () => {
    const resolve = createTenantResolution({
      store,
      memberships: () => ['acme', 'not-a-uuid'],
    })
    expect(codeOf(await resolve(request('/', { 'x-tenant-id': 'acme' })))).toBe('TENANT_FORBIDDEN')
  })

  it("anonymous: 'deny' refuses anonymous requests like a foreign tenant", async () => {
    const resolve = createTenantResolution({
      store,
      memberships: (req) => (req.header('authorization') ? [acme] : undefined),
      anonymous: 'deny',
    })
    const anonymous = await resolve(request('/', { 'x-tenant-id': 'acme' }))
    const missing = await resolve(request('/', { 'x-tenant-id': 'nope' }))
    expect(codeOf(anonymous)).toBe('TENANT_FORBIDDEN')
    expect(missing).toEqual(anonymous)
    const signedIn = await resolve(request('/', { 'x-tenant-id': 'acme', authorization: 'x' }))
    expect(signedIn.kind).toBe('tenant')
  })

  it('a memberships callback returning a non-array is a configuration error (500)', async () => {
    const resolve = createTenantResolution({ store, memberships: () => 'acme' as never })
    await expect(resolve(request('/', { 'x-tenant-id': 'acme' }))).rejects.toThrow(ConfigError)
  })

  it('bad options are refused when the middleware is built, not per request', () => {
    const bad = [
      () => createTenantResolution({} as never),
      () => createTenantResolution({ store, resolvers: [] }),
      () => createTenantResolution({ store, maxValueLength: 0 }),
      () => createTenantResolution({ store, anonymous: 'deny' }),
      () => createTenantResolution({ store, skip: ['health'] }),
      () => fromHeader({ name: 'x tenant' }),
      () => fromHeader({ by: 'name' as never }),
      () => fromPath({ prefix: 't/../' }),
      () => fromHost({ domains: false }),
    ]
    for (const build of bad) expect(build).toThrow(ConfigError)
  })

  it('skip: exact paths, /* prefixes, RegExps and predicates', async () => {
    const skipped = async (skip: never, path: string) =>
      (await createTenantResolution({ store, skip })(request(path))).kind === 'skipped'
    expect(await skipped(['/health'] as never, '/health')).toBe(true)
    expect(await skipped(['/health'] as never, '/healthz')).toBe(false)
    expect(await skipped(['/public/*'] as never, '/public')).toBe(true)
    expect(await skipped(['/public/*'] as never, '/public/a/b')).toBe(true)
    expect(await skipped(['/public/*'] as never, '/publicity')).toBe(false)
    expect(await skipped([/^\/sign/] as never, '/signup?x=1')).toBe(true)
    expect(await skipped(((r: TenantRequest) => r.method === 'GET') as never, '/x')).toBe(true)
  })
})

describe('request views', () => {
  it('pathOf and targetOf take origin-form and absolute URLs', () => {
    expect(pathOf('/t/acme/notes?x=1#f')).toBe('/t/acme/notes')
    expect(pathOf('http://127.0.0.1:3000/health?x')).toBe('/health')
    expect(pathOf('http://host')).toBe('/')
    expect(targetOf('http://h:1/a?b=c')).toBe('/a?b=c')
    expect(targetOf('/a?b')).toBe('/a?b')
  })

  it("an absolute URL's query or fragment right after the host is not its path (the router sees /)", () => {
    // GET http://x?/t/beta/notes: Express routes "/", so /t/beta in the query names no tenant
    expect(pathOf('http://x?/t/beta/notes')).toBe('/')
    expect(pathOf('http://x:80?q=/t/beta/notes')).toBe('/')
    expect(pathOf('http://x#/t/beta/notes')).toBe('/')
    expect(targetOf('http://x?/t/beta/notes')).toBe('/?/t/beta/notes')
    expect(targetOf('http://x#/t/beta')).toBe('/')
    expect(pathOf('http://x/t/alpha/notes?/t/beta/')).toBe('/t/alpha/notes')
  })
})
