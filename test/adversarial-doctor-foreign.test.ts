/**
 * A foreign table with the tenant column (here a postgres_fdw table over the shared table, and
 * a foreign partition of a tenant-aware table): row level security cannot be enabled on it, and
 * the runtime role reading it sees every tenant's rows. doctor listed nothing: it looked at
 * plain and partitioned tables only.
 */
import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { runDoctor } from '../src/doctor/index.js'
import { enableRls } from '../src/schema/rls-apply.js'
import { grantRuntimeRole } from '../src/schema/roles.js'
import { installTenantTables } from '../src/tenants/index.js'
import { createTestDatabase, dropRoles, type TestDatabase } from './helpers/db.js'

const ROLE = `adv_fdw_${randomBytes(3).toString('hex')}`
let db: TestDatabase

beforeAll(async () => {
  db = await createTestDatabase('adv_doctor_foreign')
  await installTenantTables(db.pool, { idType: 'bigint' })
  const u = new URL(db.url)
  await db.pool.query(`
    insert into tenants (id, slug, name) values (1, 'one', 'One'), (2, 'two', 'Two');
    create table accounts (tenant_id bigint not null, id bigint not null, body text)
      partition by list (tenant_id); -- no key: a foreign partition carries none
    create table accounts_1 partition of accounts for values in (1);
    insert into accounts values (1, 1, 'one secret');`)
  await enableRls(db.pool, [{ name: 'accounts' }])
  await grantRuntimeRole(db.pool, { role: ROLE })
  await db.pool.query(`
    create extension postgres_fdw;
    create server same_db foreign data wrapper postgres_fdw
      options (host '${u.hostname}', port '${u.port || '5432'}', dbname '${db.name}');
    create user mapping for public server same_db options (user '${decodeURIComponent(u.username)}'${
      u.password ? `, password '${decodeURIComponent(u.password).replaceAll("'", "''")}'` : ''
    }, password_required 'false');
    create table mirror_src (tenant_id bigint, id bigint, body text);
    insert into mirror_src values (2, 1, 'two secret');
    create foreign table accounts_2 partition of accounts for values in (2)
      server same_db options (table_name 'mirror_src');
    create foreign table accounts_copy (tenant_id bigint, id bigint, body text)
      server same_db options (table_name 'mirror_src');
    grant select on accounts_2, accounts_copy to "${ROLE}";`)
}, 60_000)

afterAll(async () => {
  await db?.drop()
  await dropRoles([ROLE])
})

it('a foreign table with the tenant column that the runtime role reads is reported', async () => {
  const c = await db.pool.connect()
  try {
    await c.query('begin')
    await c.query(`set local role "${ROLE}"`)
    await c.query("select set_config('rowtenancy.tenant_id', '1', true)")
    const seen = (await c.query('select body from accounts_copy')).rows.map((r) => r.body)
    expect(seen).toEqual(['two secret']) // tenant 1 reads tenant 2's row
  } finally {
    await c.query('rollback')
    c.release()
  }
  const report = await runDoctor(db.pool, { runtimeRole: ROLE })
  expect(
    report.findings
      .filter((f) => f.code === 'FOREIGN_TABLE_WITH_TENANT_COLUMN')
      .map((f) => f.object),
  ).toEqual(['public.accounts_2', 'public.accounts_copy'])
  await db.pool.query(`revoke all on accounts_2, accounts_copy from "${ROLE}"`)
  const after = await runDoctor(db.pool, { runtimeRole: ROLE })
  expect(after.findings.map((f) => f.code)).not.toContain('FOREIGN_TABLE_WITH_TENANT_COLUMN')
  // a grant of one column is a way in too
  await db.pool.query(`grant select (body) on accounts_copy to "${ROLE}"`)
  const column = await runDoctor(db.pool, { runtimeRole: ROLE })
  expect(
    column.findings
      .filter((f) => f.code === 'FOREIGN_TABLE_WITH_TENANT_COLUMN')
      .map((f) => f.object),
  ).toEqual(['public.accounts_copy'])
})
