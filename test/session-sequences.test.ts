import { type Generated, Kysely, sql } from 'kysely'
import type pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runWithTenant } from '../src/context/index.js'
import { TenantBindingDialect } from '../src/db/tenant-dialect.js'
import { TenantPool, withTenantClient } from '../src/pg/index.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'
import { type RlsFixture, setupRlsFixture } from './rls-fixture.js'

/**
 * A write advances a sequence, and `lastval()` / `currval()` return the value in
 * the same session afterwards: without a reset, the next checkout of the
 * connection (another tenant) would read the id of the last tenant's row. Every
 * case writes as tenant 1 on a pool of ONE connection (reuse is certain), then
 * reads the sequence state as tenant 2 through every path: both must fail with
 * "not yet defined in this session". Inside one transaction the writer still
 * reads its own id.
 */
interface DB {
  accounts: { tenant_id: string; id: Generated<string>; name: string }
}

let db: TestDatabase
let fx: RlsFixture
let sequence: string
const closers: (() => Promise<unknown>)[] = []

const NOT_DEFINED = /not yet defined in this session/

/** Tenant 2's reads of the sequence state through `query`; each must fail, not return tenant 1's id. */
async function expectNoSequenceState(query: (text: string) => Promise<unknown>): Promise<void> {
  await runWithTenant(2, async () => {
    await expect(query('select lastval() as v')).rejects.toThrow(NOT_DEFINED)
    await expect(query(`select currval('${sequence}') as v`)).rejects.toThrow(NOT_DEFINED)
  })
}

function tenantPool(): TenantPool {
  const pool = new TenantPool({ pool: fx.runtimePool(1) })
  closers.push(() => pool.end())
  return pool
}

function kysely(pool: pg.Pool): Kysely<DB> {
  const k = new Kysely<DB>({ dialect: new TenantBindingDialect({ pool, adminPool: db.pool }) })
  closers.push(() => k.destroy())
  return k
}

beforeAll(async () => {
  db = await createTestDatabase('session_sequences')
  fx = await setupRlsFixture(db, { distribute: false })
  const { rows } = await db.pool.query<{ s: string }>(
    `select pg_get_serial_sequence('accounts', 'id') as s`,
  )
  sequence = rows[0]!.s
})
afterAll(async () => {
  for (const close of closers) await close().catch(() => {})
  await fx.cleanup()
})

describe("a tenant's last id does not reach the next checkout (pool of 1)", () => {
  it('TenantPool: a lone INSERT, then another tenant on the same connection', async () => {
    const pool = tenantPool()
    const pid = async () => (await pool.query('select pg_backend_pid() as p')).rows[0].p
    const before = await runWithTenant(1, pid)
    await runWithTenant(1, () =>
      pool.query(`insert into accounts (tenant_id, name) values (1, 'seq-lone')`),
    )
    await expectNoSequenceState((text) => pool.query(text))
    expect(await runWithTenant(2, pid)).toBe(before)
  })

  it('TenantPool: an INSERT in a transaction on a checked-out client, then another tenant', async () => {
    const pool = tenantPool()
    await runWithTenant(1, async () => {
      const client = await pool.connect()
      try {
        await client.query('begin')
        const { rows } = await client.query<{ id: string }>(
          `insert into accounts (tenant_id, name) values (1, 'seq-tx') returning id`,
        )
        // the writer reads its own id inside its transaction
        const own = await client.query<{ v: string }>('select lastval()::text as v')
        expect(own.rows[0]!.v).toBe(rows[0]!.id)
        await client.query('commit')
      } finally {
        client.release()
      }
    })
    await expectNoSequenceState(async (text) => {
      const client = await pool.connect()
      try {
        return await client.query(text)
      } finally {
        client.release()
      }
    })
  })

  it('TenantPool: two writes sent at once on one client, the second failing after its nextval', async () => {
    const pool = tenantPool()
    await runWithTenant(1, async () => {
      const client = await pool.connect()
      try {
        const outcomes = await Promise.allSettled([
          client.query(`insert into accounts (tenant_id, name) values (1, 'seq-both')`),
          // the identity default runs before the NOT NULL check: nextval, then the error
          client.query('insert into accounts (tenant_id, name) values (1, null)'),
        ])
        expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected'])
      } finally {
        client.release()
      }
    })
    await expectNoSequenceState((text) => pool.query(text))
  })

  it('Kysely: a builder query that calls nextval, then raw SQL of another tenant', async () => {
    const pool = fx.runtimePool(1)
    const k = kysely(pool)
    await runWithTenant(1, () =>
      k.selectNoFrom((eb) => eb.fn<string>('nextval', [eb.val(sequence)]).as('v')).execute(),
    )
    await expectNoSequenceState((text) => sql.raw(text).execute(k))
  })

  it('Kysely: a builder INSERT, then raw SQL of another tenant', async () => {
    const pool = fx.runtimePool(1)
    const k = kysely(pool)
    await runWithTenant(1, () =>
      k.insertInto('accounts').values({ tenant_id: '1', name: 'seq-kysely' }).execute(),
    )
    await expectNoSequenceState((text) => sql.raw(text).execute(k))
    // and a plain query on the pool after it
    await expect(pool.query('select lastval()')).rejects.toThrow(NOT_DEFINED)
  })

  it('withTenantClient: an INSERT in fn, then another tenant', async () => {
    const pool = fx.runtimePool(1)
    await withTenantClient(
      pool,
      (client) => client.query(`insert into accounts (tenant_id, name) values (1, 'seq-client')`),
      { tenantId: 1 },
    )
    await expectNoSequenceState((text) =>
      withTenantClient(pool, (client) => client.query(text), { tenantId: 2 }),
    )
  })
})

describe('a connection another user of the pool changed (pool of 1)', () => {
  it('stays foreign across a checkout that runs nothing: the next work resets it first', async () => {
    const inner = fx.runtimePool(1)
    const pool = new TenantPool({ pool: inner, endPool: false })
    closers.push(() => pool.end())
    await runWithTenant(1, () => pool.query('select 1'))
    await inner.query(`select set_config('rowtenancy.tenant_id', '1', false)`)
    const idle = await pool.connect()
    idle.release()
    const { rows } = (await pool.query(
      `select coalesce(current_setting('rowtenancy.tenant_id', true), '') as t,
              (select count(*)::int from accounts) as n`,
    )) as pg.QueryResult<{ t: string; n: number }>
    expect(rows[0]).toEqual({ t: '', n: 0 })
  })
})
