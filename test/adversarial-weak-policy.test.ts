/**
 * A pre-existing policy under rowtenancy's name that only looks like its predicate
 * (coalesce(setting, tenant_id): every row to a session bound to none) is not taken as
 * rowtenancy's: enableRls replaces it, and doctor and rls status do not call it ok.
 */
import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { runDoctor } from '../src/doctor/index.js'
import { enableRls } from '../src/schema/rls-apply.js'
import { grantRuntimeRole } from '../src/schema/roles.js'
import { installTenantTables } from '../src/tenants/index.js'
import { createTestDatabase, dropRoles, type TestDatabase } from './helpers/db.js'

const ROLE = `adv_pol_${randomBytes(4).toString('hex')}`
let db: TestDatabase
beforeAll(async () => {
  db = await createTestDatabase('adv_policy')
  await installTenantTables(db.pool, { idType: 'bigint' })
  await db.pool.query(`
    insert into tenants (id, slug, name) values (1, 'one', 'One'), (2, 'two', 'Two');
    create table accounts (tenant_id bigint not null references tenants (id), id int, name text, primary key (tenant_id, id));
    insert into accounts values (1, 1, 'one-secret'), (2, 1, 'two-secret');
    alter table accounts enable row level security; alter table accounts force row level security;
    create policy rowtenancy_tenant_isolation on accounts as permissive for all to public
      using (tenant_id = coalesce(nullif(current_setting('rowtenancy.tenant_id', true), '')::bigint, tenant_id))
      with check (tenant_id = coalesce(nullif(current_setting('rowtenancy.tenant_id', true), '')::bigint, tenant_id));`)
  await grantRuntimeRole(db.pool, { role: ROLE })
}, 60_000)
afterAll(async () => {
  await db?.drop()
  await dropRoles([ROLE])
})

it('a policy that lets an unbound session read every tenant is not taken for the tenant policy', async () => {
  const c = await db.pool.connect()
  let unbound: string[] = []
  try {
    await c.query('begin')
    await c.query(`set local role "${ROLE}"`)
    unbound = (await c.query('select name from accounts order by 1')).rows.map((r) => r.name)
  } finally {
    await c.query('rollback')
    c.release()
  }
  expect(unbound).toEqual(['one-secret', 'two-secret']) // the planted policy fails open with no tenant bound
  const codesNow = async () =>
    (await runDoctor(db.pool, { runtimeRole: ROLE })).findings
      .filter((f) => f.object?.includes('accounts'))
      .map((f) => f.code)
  // doctor reports it; rls enable replaces it; then doctor is quiet and no tenant reads nothing
  expect(await codesNow()).toContain('RLS_POLICY_MISSING')
  const enable = await enableRls(db.pool, [{ name: 'accounts' }])
  expect(enable.changed).toEqual(['public.accounts'])
  expect(await codesNow()).toEqual([])
  const c2 = await db.pool.connect()
  try {
    await c2.query('begin')
    await c2.query(`set local role "${ROLE}"`)
    expect((await c2.query('select name from accounts')).rows).toEqual([])
  } finally {
    await c2.query('rollback')
    c2.release()
  }
})

it('a text tenant column under a case-insensitive collation shows tenant "ACME" the rows of "acme"; doctor reports it', async () => {
  await db.pool.query(`
    create collation adv_ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
    create table docs (tenant_id text collate adv_ci not null, id int, body text, primary key (tenant_id, id));
    insert into docs values ('acme', 1, 'acme-secret'), ('ACME', 2, 'ACME-secret');
    grant select on docs to "${ROLE}";`)
  await enableRls(db.pool, [{ name: 'docs' }], { tenantIdType: 'text' })
  const c = await db.pool.connect()
  try {
    await c.query('begin')
    await c.query(`set local role "${ROLE}"`)
    await c.query("select set_config('rowtenancy.tenant_id', 'ACME', true)")
    const seen = (await c.query('select body from docs order by 1')).rows.map((r) => r.body)
    expect(seen).toEqual(['ACME-secret', 'acme-secret'])
  } finally {
    await c.query('rollback')
    c.release()
  }
  const report = await runDoctor(db.pool, { tables: ['docs'], tenantIdType: 'text' })
  expect(report.findings.map((f) => [f.code, f.object])).toEqual([
    ['TENANT_COLUMN_COLLATION', 'public.docs.tenant_id'],
  ])
})
