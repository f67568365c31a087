/**
 * Hostile code: a partition queried by its own name. Row level security on a
 * partitioned table does not apply to a query that names the partition; the
 * runtime role is granted every table of the schema, partitions included.
 */
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runDoctor } from '../src/doctor/index.js'
import { createTenancy, runWithTenant, type Tenancy, tenantPoolOf } from '../src/entries/index.js'
import { enableRls } from '../src/schema/rls-apply.js'
import { grantRuntimeRole } from '../src/schema/roles.js'
import { installTenantTables } from '../src/tenants/index.js'
import { createTestDatabase, dropRoles, type TestDatabase } from './helpers/db.js'

const ROLE = `adv_part_${randomBytes(3).toString('hex')}`
let db: TestDatabase
let runtime: pg.Pool
let tenancy: Tenancy

beforeAll(async () => {
  db = await createTestDatabase('adv_partitions')
  await installTenantTables(db.pool, { idType: 'bigint' })
  await db.pool.query(`
    insert into tenants (id, slug, name) values (1, 'one', 'One'), (2, 'two', 'Two');
    create table ev (tenant_id bigint not null references tenants (id), id bigint not null, body text,
      primary key (tenant_id, id)) partition by list (tenant_id);
    create table ev_1 partition of ev for values in (1);
    create table ev_2 partition of ev for values in (2);
    create table log (tenant_id bigint not null references tenants (id), id bigint not null, body text,
      primary key (tenant_id, id)) partition by range (id);
    create table log_a partition of log for values from (0) to (1000);
    insert into ev values (1, 1, 'ev one'), (2, 1, 'ev two secret');
    create table hist (tenant_id bigint not null references tenants (id), id bigint not null, body text,
      primary key (tenant_id, id));
    create table hist_2024 () inherits (hist);
    insert into hist_2024 values (1, 1, 'hist one'), (2, 2, 'hist two secret');
    insert into log values (1, 1, 'log one'), (2, 2, 'log two secret');`)
  await enableRls(db.pool, [{ name: 'ev' }, { name: 'log' }, { name: 'hist' }])
  const password = randomBytes(8).toString('hex')
  await grantRuntimeRole(db.pool, { role: ROLE })
  await db.pool.query(`alter role "${ROLE}" login password '${password}'`)
  const u = new URL(db.url)
  u.username = ROLE
  u.password = password
  runtime = new pg.Pool({ connectionString: u.toString(), max: 2 })
  tenancy = createTenancy({ pool: runtime, adminPool: db.pool, tables: ['ev', 'log', 'hist'] })
}, 60_000)

afterAll(async () => {
  await tenancy?.destroy().catch(() => {})
  await db?.drop()
  await dropRoles([ROLE])
})

describe('partitions by name', () => {
  it('the parent holds', async () => {
    const { rows } = await runWithTenant('1', () =>
      tenantPoolOf(tenancy).query('select body from ev'),
    )
    expect(rows.map((r: any) => r.body)).toEqual(['ev one'])
  })
  it('raw SQL under tenant 1 naming the partition of tenant 2: no rows', async () => {
    const r = await runWithTenant('1', () =>
      tenantPoolOf(tenancy).query('select body from ev_2'),
    ).catch((e: unknown) => e)
    expect(r instanceof Error ? [] : (r as any).rows).toEqual([])
  })
  it('raw SQL under tenant 1 naming a range partition: only tenant 1', async () => {
    const r = await runWithTenant('1', () =>
      tenantPoolOf(tenancy).query('select body from log_a'),
    ).catch((e: unknown) => e)
    expect(r instanceof Error ? [] : (r as any).rows.map((x: any) => x.body)).toEqual(['log one'])
  })
  it('a Kysely builder query under tenant 1 naming a partition: only tenant 1', async () => {
    const k = tenancy.kysely<any>()
    const r = await runWithTenant('1', () => k.selectFrom('log_a').select('body').execute()).catch(
      (e: unknown) => e,
    )
    expect(r instanceof Error ? [] : (r as any[]).map((x) => x.body)).toEqual(['log one'])
  })
  it('raw UPDATE under tenant 1 naming the partition of tenant 2: changes nothing', async () => {
    const r = await runWithTenant('1', () =>
      tenantPoolOf(tenancy).query("update ev_2 set body = 'overwritten by one'"),
    ).catch((e: unknown) => e)
    const { rows } = await db.pool.query('select body from ev where tenant_id = 2')
    expect(rows[0].body).toBe('ev two secret')
    void r
  })
  it('an inheritance child named directly under tenant 1: only tenant 1 (the parent holds)', async () => {
    const parent = await runWithTenant('1', () =>
      tenantPoolOf(tenancy).query('select body from hist'),
    )
    expect(parent.rows.map((x: any) => x.body)).toEqual(['hist one'])
    const r = await runWithTenant('1', () =>
      tenantPoolOf(tenancy).query('select body from hist_2024'),
    ).catch((e: unknown) => e)
    expect(r instanceof Error ? [] : (r as any).rows.map((x: any) => x.body)).toEqual(['hist one'])
  })
  it('a partition made after enableRls has no policy: doctor reports it, and enableRls on the parent again covers it', async () => {
    await db.pool.query(`insert into tenants (id, slug, name) values (3, 't3', 'T3') on conflict do nothing;
      create table ev_3 partition of ev for values in (3);
      insert into ev_3 values (3, 1, 'ev three');`)
    const report = await runDoctor(db.pool, { runtimeRole: ROLE })
    const objs = report.findings.map((f) => `${f.code} ${f.object}`)
    expect(objs.some((o) => o.startsWith('RLS_NOT_ENABLED') && o.includes('ev_3'))).toBe(true)
    expect(objs.some((o) => o.includes('ev_2'))).toBe(false)
    const result = await enableRls(db.pool, [{ name: 'ev' }])
    expect(result.changed).toEqual(['public.ev_3'])
    const again = await runDoctor(db.pool, { runtimeRole: ROLE })
    expect(again.findings.map((f) => f.object).some((o) => String(o).includes('ev_3'))).toBe(false)
  })
})
