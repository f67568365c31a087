/**
 * REFERENCES on a tenant table (any column) and somewhere to create a table: a foreign key of
 * the role's own table is checked without row level security, so inserting `(2, 5)` tells
 * tenant 1 whether tenant 2 has a row with id 5. doctor reported TRUNCATE and TRIGGER, the
 * other privileges row level security does not govern, but not REFERENCES.
 */
import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { runDoctor } from '../src/doctor/index.js'
import { enableRls } from '../src/schema/rls-apply.js'
import { grantRuntimeRole } from '../src/schema/roles.js'
import { installTenantTables } from '../src/tenants/index.js'
import { connectAs, createTestDatabase, dropRoles, type TestDatabase } from './helpers/db.js'

const ROLE = `adv_refs_${randomBytes(3).toString('hex')}`
let db: TestDatabase

beforeAll(async () => {
  db = await createTestDatabase('adv_doctor_refs')
  await installTenantTables(db.pool, { idType: 'bigint' })
  await db.pool.query(`
    insert into tenants (id, slug, name) values (1, 'one', 'One'), (2, 'two', 'Two');
    create table accounts (tenant_id bigint not null references tenants (id), id bigint not null, body text,
      primary key (tenant_id, id));
    insert into accounts values (2, 5, 'two secret');`)
  await enableRls(db.pool, [{ name: 'accounts' }])
  await grantRuntimeRole(db.pool, { role: ROLE })
  await db.pool.query(`alter role "${ROLE}" login password 'p'; create schema scratch;
    grant usage, create on schema scratch to "${ROLE}";
    grant references (tenant_id, id) on accounts to "${ROLE}"`)
}, 60_000)
afterAll(async () => {
  await db?.drop()
  await dropRoles([ROLE])
})

it('REFERENCES on a tenant table is reported: a foreign key probes other tenants', async () => {
  const c = await connectAs(db.url, ROLE, 'p')
  try {
    await c.query(`create table scratch.probe (t bigint, i bigint,
      foreign key (t, i) references public.accounts (tenant_id, id))`)
    await c.query('begin')
    await c.query("select set_config('rowtenancy.tenant_id', '1', true)")
    expect((await c.query('select count(*)::int as n from accounts')).rows[0].n).toBe(0)
    const exists = async (id: number) => {
      await c.query('savepoint p')
      return c
        .query('insert into scratch.probe values (2, $1)', [id])
        .then(() => true)
        .catch(async () => {
          await c.query('rollback to savepoint p')
          return false
        })
    }
    expect([await exists(5), await exists(6)]).toEqual([true, false])
    await c.query('rollback')
  } finally {
    await c.end()
  }
  const report = await runDoctor(db.pool, { runtimeRole: ROLE })
  const privileges = report.findings.filter((f) => f.code === 'ROLE_TABLE_PRIVILEGE')
  expect(privileges.map((f) => f.object)).toEqual([`role ${ROLE} -> public.accounts`])
  expect(privileges[0]?.fix).toMatch(/^revoke references on/)
})

it('default privileges that give the runtime role TRUNCATE on tables made later are reported', async () => {
  const before = await runDoctor(db.pool, { runtimeRole: ROLE })
  expect(before.findings.map((f) => f.object).filter((o) => o.includes('default'))).toEqual([])
  await db.pool.query(`alter default privileges in schema public grant truncate, trigger on tables to "${ROLE}";
    alter default privileges grant references on tables to public`)
  const report = await runDoctor(db.pool, { runtimeRole: ROLE })
  const latent = report.findings.filter((f) => f.object.includes('default privileges'))
  expect(latent.map((f) => [f.code, f.object.replace(/of \S+/, 'of <owner>')])).toEqual([
    ['ROLE_TABLE_PRIVILEGE', `role ${ROLE} -> default privileges of <owner>`],
    ['ROLE_TABLE_PRIVILEGE', `role ${ROLE} -> default privileges of <owner> in schema public`],
  ])
  for (const f of latent) await db.pool.query(f.fix)
  const after = await runDoctor(db.pool, { runtimeRole: ROLE })
  expect(after.findings.filter((f) => f.object.includes('default privileges'))).toEqual([])
})
