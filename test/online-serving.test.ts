/**
 * Hybrid serving (createTenancy({ hybrid: true })), the pitfalls it guards:
 * a tenant on its legacy schema is read and written there by the same app code
 * (Kysely, the tenant pool, withTenantClient) and sees no shared rows; a stale
 * cached placement never sends a query to the wrong place (refused before the
 * statement runs, retryable, the next try right); a fenced tenant waits at most
 * its fence_ms, then gets the retryable TENANT_MIGRATING (HTTP 503); other
 * tenants are not held up.
 */
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { httpStatusOf } from '../src/entries/express.js'
import {
  createTenancy,
  runWithTenant,
  type Tenancy,
  TenantMigratingError,
  tenantPoolOf,
} from '../src/entries/index.js'
import { withTenantClient } from '../src/entries/pg.js'
import { quoteIdent } from '../src/sql/quote.js'
import { fenceKeySql, servingDdl } from '../src/tenants/serving.js'
import { createTestDatabase, dropRoles, type TestDatabase } from './helpers/db.js'

interface DB {
  item: { tenant_id?: string; id?: number; name: string }
}

let db: TestDatabase
let tenancy: Tenancy
let runtime: pg.Pool
const role = `rt_serving_${randomBytes(3).toString('hex')}`

beforeAll(async () => {
  db = await createTestDatabase('serving')
  const password = randomBytes(8).toString('hex')
  await db.pool.query(`
    create role ${quoteIdent(role)} login password '${password}';
    create table public.tenants (id bigint primary key);
    insert into public.tenants values (1), (2);
    create table public.item (tenant_id bigint not null references tenants(id), id int not null,
      name text not null, primary key (tenant_id, id));
    create schema legacy_one;
    create table legacy_one.item (id serial primary key, name text not null);
    insert into legacy_one.item (name) values ('legacy a'), ('legacy b');
    insert into public.item values (2, 1, 'shared two'), (1, 99, 'stale shared row of one');
    grant usage on schema legacy_one to ${quoteIdent(role)};
    grant select, insert, update, delete on all tables in schema legacy_one to ${quoteIdent(role)};
    grant usage on all sequences in schema legacy_one to ${quoteIdent(role)};
    grant select, insert, update, delete on public.item to ${quoteIdent(role)};
    grant select on public.tenants to ${quoteIdent(role)};
  `)
  for (const s of servingDdl('public', 'bigint')) await db.pool.query(s)
  await db.pool.query(
    `insert into rowtenancy_serving (tenant_id, schema_name, placement, fence_ms) values
       (1, 'legacy_one', 'schema', 300), (2, 'legacy_two', 'shared', 300)`,
  )
  const u = new URL(db.url)
  u.username = role
  u.password = password
  runtime = new pg.Pool({ connectionString: u.toString(), max: 4 })
  tenancy = createTenancy({ pool: runtime, adminPool: db.pool, tables: ['item'], hybrid: true })
  for (const s of tenancy.rlsSql()) await db.pool.query(s)
}, 60_000)

afterAll(async () => {
  await runtime?.end()
  await db?.drop()
  await dropRoles([role])
})

const names = (rows: { name: string }[]) => rows.map((r) => r.name).sort()

describe('hybrid serving', () => {
  it('a tenant on its schema: Kysely, the tenant pool and withTenantClient read and write its legacy tables', async () => {
    const k = tenancy.kysely<DB>()
    await runWithTenant('1', async () => {
      expect(names(await k.selectFrom('item').select('name').execute())).toEqual([
        'legacy a',
        'legacy b',
      ])
      await k.insertInto('item').values({ name: 'written on schema' }).execute()
      await tenancy.transaction<DB, void>(async (trx) => {
        await trx
          .updateTable('item')
          .set({ name: 'legacy A' })
          .where('name', '=', 'legacy a')
          .execute()
      })
      const pool = tenantPoolOf(tenancy)
      const viaPool = await pool.query('select name from item order by name')
      expect(names(viaPool.rows)).toEqual(['legacy A', 'legacy b', 'written on schema'])
      // the shared tables show none of its rows meanwhile (RLS bound to no tenant)
      const shared = await pool.query('select count(*)::int as n from public.item')
      expect(shared.rows[0].n).toBe(0)
      const viaClient = await withTenantClient(
        runtime,
        (c) => c.query('select count(*)::int as n from item'),
        { hybrid: true, tenantId: '1' },
      )
      expect(viaClient.rows[0].n).toBe(3)
    })
    const { rows } = await db.pool.query('select name from legacy_one.item order by id')
    expect(names(rows)).toEqual(['legacy A', 'legacy b', 'written on schema'])
    // tenant 2 (shared) is filtered and stamped as usual
    await runWithTenant('2', async () => {
      expect(names(await k.selectFrom('item').select('name').execute())).toEqual(['shared two'])
      await k.insertInto('item').values({ id: 2, name: 'shared too' }).execute()
    })
    const two = await db.pool.query('select tenant_id::int, name from public.item where id = 2')
    expect(two.rows).toEqual([{ tenant_id: 2, name: 'shared too' }])
  })

  it('a stale cached placement never reaches the wrong place: a lone statement is retried once, a transaction refused (retryable)', async () => {
    const k = tenancy.kysely<DB>()
    await runWithTenant('1', () => k.selectFrom('item').selectAll().execute()) // caches 'schema'
    await db.pool.query(`insert into public.item select 1, id, name from legacy_one.item`)
    await db.pool.query(`delete from public.item where tenant_id = 1 and id = 99`)
    await db.pool.query(`update rowtenancy_serving set placement = 'shared' where tenant_id = 1`)
    // refused by rowtenancy_enter before it ran, then sent again compiled for the shared tables
    await runWithTenant('1', () =>
      k.insertInto('item').values({ id: 50, name: 'after the move' }).execute(),
    )
    const legacy = await db.pool.query('select count(*)::int as n from legacy_one.item')
    expect(legacy.rows[0].n).toBe(3)
    const shared = await db.pool.query(
      "select count(*)::int as n from public.item where tenant_id = 1 and name = 'after the move'",
    )
    expect(shared.rows[0].n).toBe(1)
    // back to the schema under a cached 'shared': a transaction's first statement is refused
    await db.pool.query(`update rowtenancy_serving set placement = 'schema' where tenant_id = 1`)
    const err = await runWithTenant('1', () =>
      tenancy.transaction<DB, void>(async (trx) => {
        await trx.insertInto('item').values({ id: 51, name: 'must not reach shared' }).execute()
      }),
    ).catch((e) => e)
    expect(err).toBeInstanceOf(TenantMigratingError)
    expect(err.why).toBe('moved')
    expect(httpStatusOf(err)).toBe(503)
    const none = await db.pool.query('select count(*)::int as n from public.item where id = 51')
    expect(none.rows[0].n).toBe(0)
    // the next try sees the schema
    expect(await runWithTenant('1', () => k.selectFrom('item').selectAll().execute())).toHaveLength(
      3,
    )
  })

  it('a fenced tenant waits at most its fence_ms, then TENANT_MIGRATING; another tenant goes on', async () => {
    const fence = await db.pool.connect()
    try {
      await fence.query('begin')
      await fence.query(`select pg_advisory_xact_lock(${fenceKeySql("'1'")})`)
      const k = tenancy.kysely<DB>()
      const err = await runWithTenant('1', () => k.selectFrom('item').selectAll().execute()).catch(
        (e) => e,
      )
      expect(err).toBeInstanceOf(TenantMigratingError)
      expect(err.why).toBe('fenced')
      expect(err.code).toBe('TENANT_MIGRATING')
      const pooled = await runWithTenant('1', () => tenantPoolOf(tenancy).query('select 1')).catch(
        (e: unknown) => e as { code?: string; cause?: { code?: string } },
      )
      expect(pooled.code ?? pooled.cause?.code).toMatch(/TENANT_MIGRATING|RTF01/)
      const other = await runWithTenant('2', () => k.selectFrom('item').select('name').execute())
      expect(other.length).toBeGreaterThan(0)
    } finally {
      await fence.query('rollback')
      fence.release()
    }
    const k = tenancy.kysely<DB>()
    expect(await runWithTenant('1', () => k.selectFrom('item').selectAll().execute())).toHaveLength(
      3,
    )
  })

  it('bad hybrid options are refused', () => {
    expect(() =>
      createTenancy({ pool: runtime, tables: ['item'], hybrid: { ttl: 5 } as never }),
    ).toThrow(/Unknown hybrid option "ttl"/)
    expect(() => createTenancy({ pool: runtime, tables: ['item'], hybrid: { ttlMs: -1 } })).toThrow(
      /ttlMs/,
    )
  })
})
