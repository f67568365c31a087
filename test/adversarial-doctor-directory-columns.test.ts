/**
 * UPDATE granted on one column of the tenant directory (`grant update (domain) on
 * tenant_domains`) lets a tenant's code take another tenant's domain; doctor asked
 * has_table_privilege, which a column grant does not satisfy, and said nothing.
 */
import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { runDoctor } from '../src/doctor/index.js'
import { grantRuntimeRole } from '../src/schema/roles.js'
import { installTenantTables } from '../src/tenants/index.js'
import { connectAs, createTestDatabase, dropRoles, type TestDatabase } from './helpers/db.js'

const ROLE = `adv_dcol_${randomBytes(3).toString('hex')}`
let db: TestDatabase

beforeAll(async () => {
  db = await createTestDatabase('adv_directory_cols')
  await installTenantTables(db.pool, { idType: 'bigint' })
  await db.pool.query(`
    insert into tenants (id, slug, name) values (1, 'one', 'One'), (2, 'two', 'Two');
    insert into tenant_domains (tenant_id, domain) values (2, 'two.example');`)
  await grantRuntimeRole(db.pool, { role: ROLE })
  await db.pool.query(`alter role "${ROLE}" login password 'p'`)
}, 60_000)
afterAll(async () => {
  await db?.drop()
  await dropRoles([ROLE])
})

const directory = async () =>
  (await runDoctor(db.pool, { runtimeRole: ROLE })).findings
    .filter((f) => f.code === 'ROLE_WRITES_DIRECTORY')
    .map((f) => f.object)

it('a column grant of UPDATE on the directory is reported', async () => {
  expect(await directory()).toEqual([])
  await db.pool.query(`grant update (tenant_id) on tenant_domains to "${ROLE}";
    grant update (status) on tenants to "${ROLE}"`)
  const c = await connectAs(db.url, ROLE, 'p')
  try {
    const r = await c.query("update tenant_domains set tenant_id = 1 where domain = 'two.example'")
    expect(r.rowCount).toBe(1) // tenant 1 took tenant 2's domain
  } finally {
    await c.end()
  }
  expect(await directory()).toEqual(['public.tenant_domains', 'public.tenants'])
})
