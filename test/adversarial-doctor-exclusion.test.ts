/**
 * Exclusion constraints are uniqueness across rows: one without the tenant column makes one
 * tenant's booking block another's, and the conflict error prints the other tenant's row
 * (`conflicts with existing key (room, during)=(1, [...])`). doctor called it a slow index (a
 * warning), and said nothing of one that leads with the tenant column compared by `<>`, which
 * makes rows of different tenants conflict and nothing else.
 */
import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { runDoctor } from '../src/doctor/index.js'
import { enableRls } from '../src/schema/rls-apply.js'
import { grantRuntimeRole } from '../src/schema/roles.js'
import { installTenantTables } from '../src/tenants/index.js'
import { createTestDatabase, dropRoles, type TestDatabase } from './helpers/db.js'

const ROLE = `adv_excl_${randomBytes(3).toString('hex')}`
let db: TestDatabase

beforeAll(async () => {
  db = await createTestDatabase('adv_doctor_excl')
  await installTenantTables(db.pool, { idType: 'bigint' })
  await db.pool.query(`
    create extension btree_gist;
    insert into tenants (id, slug, name) values (1, 'one', 'One'), (2, 'two', 'Two');
    create table booking (tenant_id bigint not null references tenants (id), id bigint not null,
      room int not null, during tstzrange not null, primary key (tenant_id, id),
      constraint booking_no_overlap exclude using gist (room with =, during with &&));
    create table slot (tenant_id bigint not null references tenants (id), id bigint not null,
      room int not null, primary key (tenant_id, id),
      constraint slot_other_tenant exclude using gist (tenant_id with <>, room with =));
    create table fine (tenant_id bigint not null references tenants (id), id bigint not null,
      room int not null, during tstzrange not null, primary key (tenant_id, id),
      constraint fine_no_overlap exclude using gist (tenant_id with =, room with =, during with &&));
    insert into booking values (1, 1, 7, '[2024-01-01,2024-01-02)');`)
  await enableRls(db.pool, [{ name: 'booking' }, { name: 'slot' }, { name: 'fine' }])
  await grantRuntimeRole(db.pool, { role: ROLE })
}, 60_000)

afterAll(async () => {
  await db?.drop()
  await dropRoles([ROLE])
})

it('an exclusion constraint that does not hold each tenant apart is an error', async () => {
  const c = await db.pool.connect()
  try {
    await c.query('begin')
    await c.query(`set local role "${ROLE}"`)
    await c.query("select set_config('rowtenancy.tenant_id', '2', true)")
    const err = await c
      .query(`insert into booking values (2, 1, 7, '[2024-01-01 12:00,2024-01-03)')`)
      .catch((e: unknown) => e as Error & { detail?: string })
    expect(String((err as { detail?: string }).detail)).toMatch(/conflicts with existing key/)
  } finally {
    await c.query('rollback')
    c.release()
  }
  const report = await runDoctor(db.pool, { runtimeRole: ROLE })
  const keys = report.findings
    .filter((f) => /booking|slot|fine/.test(f.object))
    .map((f) => `${f.code} ${f.severity} ${f.object}`)
  expect(keys).toEqual([
    'UNIQUE_WITHOUT_TENANT error public.booking.booking_no_overlap',
    'UNIQUE_WITHOUT_TENANT error public.slot.slot_other_tenant',
  ])
})
