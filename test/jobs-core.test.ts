import { createHmac, hash, randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runWithTenant, withoutTenant } from '../src/context/index.js'
import { ConfigError, InvalidTenantIdError, MissingTenantError } from '../src/errors/index.js'
import { blake2sTag } from '../src/jobs/blake2s.js'
import { canonicalClone, canonicalJson } from '../src/jobs/envelope.js'
import { hmacSha256 } from '../src/jobs/hmac.js'
import {
  createJobTenancy,
  JobRejectedError,
  tenantQueue,
  tenantTaskList,
} from '../src/jobs/index.js'
import { jobMac } from '../src/jobs/job-mac.js'
import { installTenantTables, TenantStore } from '../src/tenants/index.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'

let db: TestDatabase
let store: TenantStore
const SECRET = 'a-secret-of-at-least-16-bytes'

beforeAll(async () => {
  db = await createTestDatabase('jobs_core')
  await installTenantTables(db.pool, { idType: 'bigint' })
  await db.pool.query(
    `insert into tenants (id, slug, name) values (1, 'one', 'One'), (2, 'two', 'Two')`,
  )
  store = new TenantStore({ db: db.pool, ttlMs: 0 })
})
afterAll(async () => {
  await db?.drop()
})

const make = (extra: Record<string, unknown> = {}) =>
  createJobTenancy({
    store,
    audit: { db: db.pool, table: false as const },
    secret: SECRET,
    queues: { work: true, global: { crossTenant: 'rollup' } },
    ...extra,
  })

describe('job envelope', () => {
  it('keeps the tenant beside the payload, never inside it', () => {
    const sealed = runWithTenant('1', () => make({ secret: undefined }).seal('work', { a: 1 }))
    expect(sealed).toEqual({ rowtenancy: { v: 1, tenant: '1' }, payload: { a: 1 } })
  })

  it('a signature survives jsonb reordering keys and canonicalizes ids (007 -> 7)', async () => {
    const jobs = make()
    const payload = {
      zeta: 1,
      a: { yy: 2, b: [{ dddd: 1, c: 2 }] },
      mid: 'x',
      gone: undefined,
      n: { '10': 1, '2': 2, bb: 1, c: 2 },
      at: new Date(0),
    }
    const sealed = runWithTenant('007', () => jobs.seal('work', payload))
    expect(sealed.rowtenancy.tenant).toBe('7')
    const viaDb = runWithTenant('1', () => jobs.seal('work', payload))
    const { rows } = await db.pool.query('select $1::jsonb as d', [JSON.stringify(viaDb)])
    expect(Object.keys(rows[0].d.payload)).not.toEqual(Object.keys(payload))
    const admitted = await jobs.admit('work', rows[0].d, 'j1')
    expect(admitted).toMatchObject({
      kind: 'tenant',
      tenant: { id: '1' },
      payload: { zeta: 1, mid: 'x', n: { '10': 1, '2': 2, bb: 1, c: 2 }, at: new Date(0).toJSON() },
    })
    // jsonb put "c" before "bb": the canonical text, not the key order, is what is signed
    expect(Object.keys(rows[0].d.payload.n)).not.toEqual(Object.keys(viaDb.payload.n))
  })

  it('refuses another secret, and a signature moved to another queue', async () => {
    const sealed = runWithTenant('1', () =>
      make({ secret: 'another-secret-of-16-bytes' }).seal('work', {}),
    )
    await expect(make().admit('work', sealed, 'j')).rejects.toMatchObject({
      reason: 'bad-signature',
    })
    const jobs = make({ queues: { work: true, other: true } })
    const forOther = runWithTenant('1', () => jobs.seal('other', {}))
    await expect(jobs.admit('work', forOther, 'j')).rejects.toMatchObject({
      reason: 'bad-signature',
    })
  })

  it('without a secret jobs are not signed, and run without one', async () => {
    const jobs = make({ secret: undefined })
    const sealed = runWithTenant('2', () => jobs.seal('work', null))
    expect(sealed.rowtenancy.sig).toBeUndefined()
    await expect(jobs.admit('work', sealed, 'j')).resolves.toMatchObject({
      kind: 'tenant',
      tenant: { id: '2' },
    })
  })

  it('enqueue fails closed: no tenant, inside withoutTenant, a malformed current tenant', () => {
    const jobs = make()
    expect(() => jobs.seal('work', {})).toThrow(MissingTenantError)
    expect(() => withoutTenant('x', () => jobs.seal('work', {}))).toThrow(MissingTenantError)
    expect(() => runWithTenant('abc', () => jobs.seal('work', {}))).toThrow(InvalidTenantIdError)
  })

  it('a payload naming the same tenant is fine; naming another one is refused', () => {
    const jobs = make()
    expect(runWithTenant('1', () => jobs.seal('work', { tenantId: 1 })).payload).toEqual({
      tenantId: 1,
    })
    for (const key of ['tenant_id', 'tenantId', 'tenant']) {
      expect(() => runWithTenant('1', () => jobs.seal('work', { [key]: '2' }))).toThrow(
        expect.objectContaining({ reason: 'payload-tenant' }),
      )
    }
  })

  it('cross-tenant queues carry no tenant; a tenant in a cross-tenant job is malformed', async () => {
    const jobs = make()
    expect(jobs.seal('global', { x: 1 }).rowtenancy.tenant).toBeNull()
    expect(runWithTenant('1', () => jobs.seal('global', {})).rowtenancy.tenant).toBeNull()
    const tenantJob = runWithTenant('1', () =>
      make({ queues: { global: true } }).seal('global', {}),
    )
    await expect(jobs.admit('global', tenantJob, 'j')).rejects.toMatchObject({
      reason: 'malformed',
    })
    await expect(jobs.admit('global', jobs.seal('global', {}), 'j')).resolves.toMatchObject({
      kind: 'cross',
      reason: 'rollup',
    })
  })

  it('malformed envelopes and extra keys beside it are refused', async () => {
    const jobs = make({ secret: undefined })
    for (const data of [
      null,
      [],
      'text',
      { rowtenancy: null, payload: 1 },
      { rowtenancy: { v: 1, tenant: 7 }, payload: 1 },
      { rowtenancy: { v: 1, tenant: '1' }, payload: 1, tenant_id: '2' },
      { rowtenancy: { v: 1, tenant: 'abc' }, payload: 1 },
    ]) {
      await expect(jobs.admit('work', data, 'j')).rejects.toBeInstanceOf(JobRejectedError)
    }
    // also with a store whose get is its own (asked through get, not its cache)
    class CheckingStore extends TenantStore {
      override get(id: unknown) {
        return super.get(id)
      }
    }
    const checking = make({ secret: undefined, store: new CheckingStore({ db: db.pool }) })
    await expect(
      checking.admit('work', { rowtenancy: { v: 1, tenant: 'abc' }, payload: 1 }, 'j'),
    ).rejects.toMatchObject({ reason: 'malformed' })
  })

  it('retryable only when time can cure it', () => {
    expect(new JobRejectedError('suspended', 'x')).toMatchObject({
      retryable: true,
      code: 'JOB_REJECTED',
    })
    expect(new JobRejectedError('unknown-tenant', 'x').retryable).toBe(true)
    expect(new JobRejectedError('bad-signature', 'x').retryable).toBe(false)
  })

  it('configuration errors say what to do', () => {
    expect(() => createJobTenancy({ store, queues: { g: { crossTenant: 'r' } } })).toThrow(
      /pass audit/,
    )
    expect(() => make({ secret: 'short' })).toThrow(/at least 16 bytes/)
    expect(() => make({ suspended: 'sleep' })).toThrow(ConfigError)
    expect(() => make({ queues: {} })).toThrow(/needs queues/)
    expect(() => make({ queues: { q: { crossTenant: ' ' } } })).toThrow(
      /reason written to the audit log/,
    )
    expect(() => make({ waitMs: -1 })).toThrow(/waitMs/)
    const jobs = make()
    expect(() => tenantTaskList(jobs, { work: () => 1 }, { unavailableHoldMs: -1 })).toThrow(
      /unavailableHoldMs must be a whole number/,
    )
  })
})

describe('process', () => {
  const noDefer = async () => {}
  it('refusals and a handler that throws come back as rejections, never synchronous throws', async () => {
    const jobs = make({ store: new TenantStore({ db: db.pool }) })
    const job = { id: 'j', attempt: 1 }
    const refused = jobs.process('work', { payload: 1 }, job, () => 1, noDefer)
    await expect(refused).rejects.toMatchObject({ reason: 'no-tenant' })
    const sealed = runWithTenant('1', () => jobs.seal('work', { n: 1 }))
    const throwing = () => {
      throw new Error('boom')
    }
    // first run looks tenant 1 up, the second finds it cached: both paths reject the same way
    for (let i = 0; i < 2; i++) {
      const run = jobs.process('work', sealed, job, throwing, noDefer)
      await expect(run).rejects.toThrow('boom')
    }
    await expect(
      jobs.process('work', sealed, job, (p, info) => [p, info.tenantId], noDefer),
    ).resolves.toEqual([{ n: 1 }, '1'])
  })
})

describe('process: refusals as the adapter wants them', () => {
  const noDefer = async () => {}
  const job = { id: 'j', attempt: 1 }
  const mark = (err: JobRejectedError) => new Error(`refused: ${err.reason}`)
  it('`refused` maps the refusals of the job, from the checks and from a lookup that queried', async () => {
    const jobs = make({ store: new TenantStore({ db: db.pool }) })
    await expect(jobs.process('work', { payload: 1 }, job, () => 1, noDefer, mark)).rejects.toThrow(
      'refused: no-tenant',
    )
    const forged = { rowtenancy: { v: 1, tenant: '1', sig: 'A'.repeat(43) }, payload: 1 }
    await expect(jobs.process('work', forged, job, () => 1, noDefer, mark)).rejects.toThrow(
      'refused: bad-signature',
    )
    const ghost = runWithTenant('99', () => jobs.seal('work', {}))
    await expect(jobs.process('work', ghost, job, () => 1, noDefer, mark)).rejects.toThrow(
      'refused: unknown-tenant',
    )
  })

  it('what the handler throws comes back unchanged, with the tenant looked up or cached', async () => {
    const cachingStore = new TenantStore({ db: db.pool })
    const jobs = make({ store: cachingStore })
    const sealed = runWithTenant('1', () => jobs.seal('work', {}))
    const inner = new JobRejectedError('bad-signature', 'thrown by the handler')
    const thrower = () => {
      throw inner
    }
    const rejecter = async () => {
      throw inner
    }
    for (const handler of [thrower, rejecter]) {
      cachingStore.invalidate()
      expect(cachingStore.peek('1')).toBeUndefined()
      await expect(jobs.process('work', sealed, job, handler, noDefer, mark)).rejects.toBe(inner)
      expect(cachingStore.peek('1')).toBeDefined()
      await expect(jobs.process('work', sealed, job, handler, noDefer, mark)).rejects.toBe(inner)
    }
  })
})

describe('job signing', () => {
  /** The signature of a message start and payload as {@link jobMac} defines it, by Node's native BLAKE2s. */
  const expectedTag = (key: Uint8Array, start: string, text: string) => {
    const keyBlock = Buffer.alloc(64)
    keyBlock.set(key.length > 64 ? hash('blake2s256', key, 'buffer') : key)
    const head = Buffer.from(start)
    const padded = Buffer.alloc(Math.ceil(head.length / 64) * 64, ' ')
    padded.set(head)
    return hash(
      'blake2s256',
      Buffer.concat([keyBlock, padded, Buffer.from(text)]),
      'base64url',
    ).slice(0, 22)
  }

  it('signs BLAKE2s-256 (132 bits, base64url) of a key block, version, [queue, tenant] and the canonical payload', () => {
    const jobs = make()
    const payload = { b: [1, { d: 'é', c: null }], a: 'x' }
    const sealed = runWithTenant('1', () => jobs.seal('work', payload))
    const key = Buffer.from(SECRET)
    expect(sealed.rowtenancy.sig).toBe(
      expectedTag(key, 'rowtenancy-job/v2\n["work","1"]\n', '{"a":"x","b":[1,{"c":null,"d":"é"}]}'),
    )
    const cross = jobs.seal('global', 'text')
    expect(cross.rowtenancy.sig).toBe(
      expectedTag(key, 'rowtenancy-job/v2\n["global",null]\n', '"text"'),
    )
  })

  it("the JavaScript BLAKE2s equals Node's native one for every key length, message start and payload length", () => {
    const pieces = ['a', '{"i":1}', 'é', '😀', '\u007f']
    for (const keyLength of [16, 63, 64, 65, 200]) {
      const key = randomBytes(keyLength)
      const mac = jobMac(key)
      for (const start of [
        'rowtenancy-job/v2\n["q","7"]\n',
        `s${'q'.repeat(62)}\n`,
        `v2\n["${'é'.repeat(40)}",null]\n`,
      ]) {
        const head = mac.head(start)
        for (const length of [
          1, 2, 3, 4, 5, 55, 63, 64, 65, 127, 128, 129, 191, 192, 255, 256, 257, 700,
        ]) {
          for (const piece of [pieces[length % pieces.length]!, 'a']) {
            const text = piece.repeat(length).slice(0, length)
            const expected = expectedTag(key, start, text)
            expect(mac.tag(head, text), `key ${keyLength}, ${length} x ${piece}`).toBe(expected)
            // the JavaScript path takes short ASCII text, and leaves the rest to the native hash
            const js = blake2sTag(head.state, text)
            if (/^[\x00-\x7f]+$/.test(text) && text.length <= 256) expect(js).toBe(expected)
            else expect(js).toBeUndefined()
          }
        }
      }
    }
  })

  it('a name sealed with the job is bound: another name, or none, fails; the name comes after [queue, tenant]', async () => {
    const jobs = make({ store: new TenantStore({ db: db.pool }) })
    const sealed = runWithTenant('1', () => jobs.seal('work', { n: 1 }, 'invoice'))
    expect(sealed.rowtenancy.sig).toBe(
      expectedTag(Buffer.from(SECRET), 'rowtenancy-job/v2\n["work","1"]\n', '"invoice"\n{"n":1}'),
    )
    await expect(jobs.admit('work', sealed, 'j', 'invoice')).resolves.toMatchObject({
      tenant: { id: '1' },
    })
    for (const name of ['refund', undefined, '']) {
      await expect(jobs.admit('work', sealed, 'j', name)).rejects.toMatchObject({
        reason: 'bad-signature',
      })
    }
    const unnamed = runWithTenant('1', () => jobs.seal('work', { n: 1 }))
    await expect(jobs.admit('work', unnamed, 'j', 'invoice')).rejects.toMatchObject({
      reason: 'bad-signature',
    })
  })

  it('a v1 signature (HMAC-SHA256, of an earlier release) verifies with legacySignatures only; one of another job never', async () => {
    const jobs = make({ store: new TenantStore({ db: db.pool }), legacySignatures: true })
    const v1 = (start: string, text: string) =>
      createHmac('sha256', SECRET)
        .update(`rowtenancy-job/v1\n${start}\n${text}`)
        .digest('base64url')
    const queued = {
      rowtenancy: { v: 1, tenant: '1', sig: v1('["work","1"]', '{"n":1}') },
      payload: { n: 1 },
    }
    await expect(jobs.admit('work', queued, 'j')).resolves.toMatchObject({ tenant: { id: '1' } })
    // v1 bound no name: a job queued by an earlier release verifies whatever its name
    await expect(jobs.admit('work', queued, 'j', 'invoice')).resolves.toMatchObject({
      tenant: { id: '1' },
    })
    for (const sig of [
      v1('["work","2"]', '{"n":1}'),
      v1('["other","1"]', '{"n":1}'),
      v1('["work","1"]', '{"n":2}'),
    ]) {
      const forged = { ...queued, rowtenancy: { ...queued.rowtenancy, sig } }
      await expect(jobs.admit('work', forged, 'j')).rejects.toMatchObject({
        reason: 'bad-signature',
      })
    }
    // by default a legacy signature is refused, saying how to accept it
    const strict = make({ store: new TenantStore({ db: db.pool }) })
    await expect(strict.admit('work', queued, 'j')).rejects.toMatchObject({
      reason: 'bad-signature',
      message: expect.stringMatching(/earlier release.*legacySignatures: true/),
    })
  })

  it("the reused-buffer HMAC equals node's createHmac for every key and message length, whole or in two parts", () => {
    const pieces = ['a', 'é', '€', '😀', '\n', '"', '\u0000']
    for (const keyLength of [16, 63, 64, 65, 200]) {
      const key = randomBytes(keyLength)
      const mac = hmacSha256(key)
      for (const length of [0, 1, 55, 56, 64, 119, 120, 700, 2047, 2048, 2049, 5000]) {
        for (const piece of [pieces[length % pieces.length]!, 'a']) {
          const message = piece.repeat(length).slice(0, length)
          const expected = createHmac('sha256', key).update(message).digest('base64url')
          expect(mac(message), `key ${keyLength}, ${length} x ${piece}`).toBe(expected)
          // in two parts (split where no surrogate pair is cut), as the signer passes it
          const cut = Math.floor(length / 3)
          if (!/[\ud800-\udbff]$/.test(message.slice(0, cut))) {
            expect(mac(message.slice(0, cut), message.slice(cut)), `${length} in parts`).toBe(
              expected,
            )
          }
        }
      }
    }
  })

  it('a signature must match exactly: one changed character, or a valid one of another job, fails', async () => {
    const jobs = make()
    const sealed = runWithTenant('1', () => jobs.seal('work', { n: 1 }))
    const sig = sealed.rowtenancy.sig!
    const last = sig.at(-1) === 'A' ? 'B' : 'A'
    const first = sig[0] === 'A' ? 'B' : 'A'
    const bads = [`${sig.slice(0, -1)}${last}`, `${first}${sig.slice(1)}`, sig.slice(1), `${sig}A`]
    for (const bad of [...bads, sig.toLowerCase(), 'A'.repeat(43), '']) {
      if (bad === sig) continue
      const data = { ...sealed, rowtenancy: { ...sealed.rowtenancy, sig: bad } }
      await expect(jobs.admit('work', data, 'j')).rejects.toMatchObject({ reason: 'bad-signature' })
    }
  })
})

describe('canonicalJson', () => {
  const slow = (value: unknown) =>
    JSON.stringify(value, (_k, v: unknown) => {
      if (v === null || typeof v !== 'object' || Array.isArray(v)) return v
      const sorted: Record<string, unknown> = {}
      for (const key of Object.keys(v).sort()) sorted[key] = (v as Record<string, unknown>)[key]
      return sorted
    }) ?? 'null'

  it('gives the same text as sorting every object, whatever path it takes', () => {
    let deep: unknown = { z: 1, a: 2 }
    for (let i = 0; i < 100; i++) deep = { next: deep }
    const values: unknown[] = [
      undefined,
      null,
      1,
      'x',
      { a: 1, b: 2 },
      { b: 2, a: 1 },
      { a: { d: 1, c: 2 } },
      [{ b: 1, a: 2 }, 3],
      { '10': 1, '9': 2, a: 3 },
      { a: undefined, b: () => 1, c: Symbol('s') },
      { at: new Date(0), x: { toJSON: () => ({ z: 1, y: 2 }) } },
      { n: Number.NaN, i: Number.POSITIVE_INFINITY },
      new Map([[1, 2]]),
      deep,
    ]
    for (const value of values) expect(canonicalJson(value)).toBe(slow(value))
  })

  it('keeps a "__proto__" key (an own key after JSON.parse) in the text, in either key order', () => {
    for (const text of ['{"__proto__":{"t":2},"a":1}', '{"a":1,"__proto__":{"t":2}}']) {
      const value = JSON.parse(text)
      expect(canonicalJson(value)).toBe('{"__proto__":{"t":2},"a":1}')
    }
    // so a key added to a signed payload breaks its signature
    expect(canonicalJson(JSON.parse('{"b":1,"a":1,"__proto__":{}}'))).not.toBe(
      canonicalJson({ a: 1, b: 1 }),
    )
  })

  it('canonicalClone gives what the JSON round trip gives, also where it copies directly', () => {
    class Point {
      constructor(
        public y = 1,
        public x = 2,
      ) {}
    }
    const values: unknown[] = [
      undefined,
      null,
      -0,
      Number.NaN,
      'text',
      { a: 1, b: [1, 'x', null, true, { c: -0 }] },
      { b: 1, a: 2 },
      [1, undefined, () => 1],
      // biome-ignore lint/suspicious/noSparseArray: a hole is what is tested
      [1, , 3],
      { a: undefined, b: 2 },
      Object.assign(Object.create(null), { a: 1, b: { c: 2 } }),
      JSON.parse('{"__proto__": {"x": 1}, "a": 1}'),
      new Point(),
      new String('a long boxed string'),
      { n: new Number(3), s: new Boolean(false) },
      { at: new Date(0) },
      { u8: new Uint8Array([1, 2]) },
      { big: { '10': 1, '9': 2 } },
    ]
    for (const value of values) {
      const text = canonicalJson(value)
      const cloned = canonicalClone(value)
      expect(cloned.text).toBe(text)
      expect(cloned.data).toStrictEqual(JSON.parse(text))
      expect(Object.getPrototypeOf(cloned.data ?? {})).toBe(
        Object.getPrototypeOf(JSON.parse(text) ?? {}),
      )
    }
    const payload = { a: { b: [1] } }
    const { data } = canonicalClone(payload)
    expect(data).not.toBe(payload)
    expect(data.a.b).not.toBe(payload.a.b)
  })

  it('a cycle throws as JSON.stringify does', () => {
    const cyclic: Record<string, unknown> = { a: 1 }
    cyclic.self = cyclic
    expect(() => canonicalJson(cyclic)).toThrow(TypeError)
    expect(() => canonicalClone(cyclic)).toThrow(TypeError)
  })
})

describe('adapter calls that return a promise reject, never throw', () => {
  it('BullMQ upsertJobScheduler outside a tenant, or with a refused option, is a rejected promise', async () => {
    const queue = {
      name: 'work',
      add: async () => ({}),
      upsertJobScheduler: async () => ({}),
    }
    const tq = tenantQueue(queue, make())
    let call: Promise<unknown> | undefined
    expect(() => {
      call = tq.upsertJobScheduler('tick', { every: 1000 }, { data: {} })
    }).not.toThrow()
    await expect(call).rejects.toThrow(MissingTenantError)
    expect(() => {
      call = runWithTenant('1', () =>
        tq.upsertJobScheduler('tick', { every: 1000 }, { opts: { repeatJobKey: 'x' } }),
      )
    }).not.toThrow()
    await expect(call).rejects.toThrow(/repeatJobKey/)
  })
})
