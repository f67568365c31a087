/**
 * CREATE on the database (granted, or the runtime role owns the database) lets raw SQL make a
 * schema of its own and a table there named like a tenant-aware table, then put that schema
 * first on the role's default search_path: the shadow table has no row level security and
 * takes other tenants' writes. doctor reported CREATE on existing schemas, not on the database.
 */
import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { runDoctor } from '../src/doctor/index.js'
import { grantRuntimeRole } from '../src/schema/roles.js'
import { installTenantTables } from '../src/tenants/index.js'
import { connectAs, createTestDatabase, dropRoles, type TestDatabase } from './helpers/db.js'

const ROLE = `adv_cdb_${randomBytes(3).toString('hex')}`
let db: TestDatabase

beforeAll(async () => {
  db = await createTestDatabase('adv_create_db')
  await installTenantTables(db.pool, { idType: 'bigint' })
  await grantRuntimeRole(db.pool, { role: ROLE })
  await db.pool.query(`alter role "${ROLE}" login password 'p'`)
}, 60_000)
afterAll(async () => {
  await db?.drop()
  await dropRoles([ROLE])
})

const found = async () =>
  (await runDoctor(db.pool, { runtimeRole: ROLE })).findings
    .filter((f) => f.code === 'ROLE_CAN_CREATE_IN_SCHEMA')
    .map((f) => f.object)

it('CREATE on the database is reported like CREATE on a schema', async () => {
  expect(await found()).toEqual([])
  await db.pool.query(`grant create on database "${db.name}" to "${ROLE}"`)
  const c = await connectAs(db.url, ROLE, 'p')
  try {
    await c.query('create schema shadow; create table shadow.tenants (id bigint)')
  } finally {
    await c.end()
  }
  expect(await found()).toEqual([
    `role ${ROLE} -> database ${db.name}`,
    `role ${ROLE} -> schema shadow`,
  ])
})
