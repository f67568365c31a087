/**
 * Hostile tenant code after `rowtenancy init --runtime-role`: the audit log (another tenant's
 * records, a forged one) and the tenant directory (another tenant's domain, its status) are out
 * of the runtime role's reach, through raw SQL and through the Kysely builder.
 */
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runDoctor } from '../src/doctor/index.js'
import {
  createTenancy,
  runWithTenant,
  type Tenancy,
  tenantPoolOf,
  withoutTenant,
} from '../src/entries/index.js'
import { cli } from './helpers/cli.js'
import { createTestDatabase, dropRoles, type TestDatabase } from './helpers/db.js'

const ROLE = `adv_aud_${randomBytes(3).toString('hex')}`
let db: TestDatabase
let tenancy: Tenancy

beforeAll(async () => {
  db = await createTestDatabase('adv_audit')
  const r = await cli(['init', '--database-url', db.url, '--runtime-role', ROLE])
  expect(r.code, r.stderr).toBe(0)
  await db.pool.query(`
    insert into tenants (id, slug, name) values (1, 'one', 'One'), (2, 'two', 'Two');
    create table accounts (tenant_id bigint not null references tenants (id), id bigint not null,
      name text, primary key (tenant_id, id));
    insert into accounts values (1, 1, 'a1'), (2, 1, 'a2');
    grant select, insert, update, delete on accounts to "${ROLE}";`)
  const password = randomBytes(8).toString('hex')
  await db.pool.query(`alter role "${ROLE}" login password '${password}'`)
  const u = new URL(db.url)
  u.username = ROLE
  u.password = password
  tenancy = createTenancy({
    pool: new pg.Pool({ connectionString: u.toString(), max: 2 }),
    adminPool: db.pool,
    tables: ['accounts'],
  })
  for (const s of tenancy.rlsSql()) await db.pool.query(s)
  // cross-tenant work done on behalf of tenant 2 (support staff for tenant two)
  await runWithTenant('2', () =>
    withoutTenant(
      'support ticket 4711 for two: export customer list',
      () => tenancy.kysely<any>().selectFrom('accounts').selectAll().execute(),
      { actor: 'support@vendor.example' },
    ),
  )
}, 60_000)

afterAll(async () => {
  await tenancy?.destroy().catch(() => {})
  await db?.drop()
  await dropRoles([ROLE])
})

describe('audit log read by the runtime role', () => {
  it('the record exists (owner view)', async () => {
    const { rows } = await db.pool.query('select tenant_context, reason from audit_log')
    expect(rows.length).toBeGreaterThan(0)
  })
  it("raw SQL under tenant 1 sees no audit record made in tenant 2's context", async () => {
    const r = await runWithTenant('1', () =>
      tenantPoolOf(tenancy).query('select tenant_context, reason, actor from audit_log'),
    ).catch((e: unknown) => e)
    expect(r instanceof Error ? [] : (r as any).rows).toEqual([])
  })
  it('raw SQL under tenant 1 cannot add an audit record', async () => {
    const r = await runWithTenant('1', () =>
      tenantPoolOf(tenancy).query(
        "insert into audit_log (source, reason, actor, tenant_context, statement, fingerprint) values ('allObjects', 'forged', 'ceo@vendor.example', '2', 'select 1', 'x')",
      ),
    ).catch((e: unknown) => e)
    expect(r).toBeInstanceOf(Error)
  })
  it("raw SQL under tenant 1 cannot change the tenant directory (another tenant's domain, a status)", async () => {
    const pool = tenantPoolOf(tenancy)
    const a = await runWithTenant('1', () =>
      pool.query("insert into tenant_domains (tenant_id, domain) values (1, 'two.example.com')"),
    ).catch((e: unknown) => e)
    const b = await runWithTenant('1', () =>
      pool.query("update tenants set status = 'suspended' where id = 2"),
    ).catch((e: unknown) => e)
    expect([a instanceof Error, b instanceof Error]).toEqual([true, true])
  })
  it("a Kysely builder query under tenant 1 cannot take tenant 2's domain", async () => {
    await db.pool.query(
      "insert into tenant_domains (tenant_id, domain) values (2, 'shop.two.example')",
    )
    await runWithTenant('1', () =>
      tenancy
        .kysely<any>()
        .updateTable('tenant_domains')
        .set({ tenant_id: '1' })
        .where('domain', '=', 'shop.two.example')
        .execute(),
    ).catch((e: unknown) => e)
    const { rows } = await db.pool.query(
      "select tenant_id::text from tenant_domains where domain = 'shop.two.example'",
    )
    expect(rows[0].tenant_id).toBe('2')
  })
})

describe('doctor and the tenant directory', () => {
  it('reports a runtime role that may write the directory, with the revoke that fixes it', async () => {
    const directory = async () =>
      (await runDoctor(db.pool, { runtimeRole: ROLE })).findings.filter(
        (f) => f.code === 'ROLE_WRITES_DIRECTORY',
      )
    expect(await directory()).toEqual([])
    // A directory table made after init gets DML through default privileges; here, a grant.
    await db.pool.query(`grant insert on tenant_domains to "${ROLE}"`)
    const found = await directory()
    expect(found.map((f) => f.object)).toEqual(['public.tenant_domains'])
    await db.pool.query(found[0]!.fix)
    expect(await directory()).toEqual([])
  })
})
