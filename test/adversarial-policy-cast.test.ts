/**
 * A policy under rowtenancy's name whose setting is cast to a lossy type is not the tenant
 * predicate: `tenant_id = nullif(current_setting(...), '')::name` on a text column truncates
 * the bound id to 63 bytes, so a tenant whose id is 63 characters is seen by every tenant
 * whose id begins with it. doctor reports it, rls status does not call it ok, rls enable
 * replaces it.
 */
import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { runDoctor } from '../src/doctor/index.js'
import { enableRls, isTenantPredicate, rlsStatus } from '../src/schema/rls-apply.js'
import { grantRuntimeRole } from '../src/schema/roles.js'
import { installTenantTables } from '../src/tenants/index.js'
import { createTestDatabase, dropRoles, type TestDatabase } from './helpers/db.js'

const ROLE = `adv_cast_${randomBytes(4).toString('hex')}`
const SHORT = 'a'.repeat(63)
const LONG = `${SHORT}-other`
let db: TestDatabase
beforeAll(async () => {
  db = await createTestDatabase('adv_cast')
  await installTenantTables(db.pool, { idType: 'text' })
  await db.pool.query(
    `insert into tenants (id, slug, name) values ($1, 'short', 'Short'), ($2, 'long', 'Long')`,
    [SHORT, LONG],
  )
  await db.pool.query(`
    create table notes (tenant_id text not null references tenants (id), id int, body text, primary key (tenant_id, id));
    alter table notes enable row level security; alter table notes force row level security;
    create policy rowtenancy_tenant_isolation on notes as permissive for all to public
      using (tenant_id = nullif(current_setting('rowtenancy.tenant_id', true), '')::name)
      with check (tenant_id = nullif(current_setting('rowtenancy.tenant_id', true), '')::name);`)
  await db.pool.query(`insert into notes values ($1, 1, 'short-secret')`, [SHORT])
  await grantRuntimeRole(db.pool, { role: ROLE })
}, 60_000)
afterAll(async () => {
  await db?.drop()
  await dropRoles([ROLE])
})

async function seenBy(tenant: string): Promise<string[]> {
  const c = await db.pool.connect()
  try {
    await c.query('begin')
    await c.query(`set local role "${ROLE}"`)
    await c.query(`select set_config('rowtenancy.tenant_id', $1, true)`, [tenant])
    return (await c.query('select body from notes order by 1')).rows.map((r) => r.body)
  } finally {
    await c.query('rollback')
    c.release()
  }
}

it('a setting cast to name (63 bytes) is not taken for the tenant predicate', async () => {
  expect(await seenBy(LONG)).toEqual(['short-secret']) // the planted policy leaks across tenants
  const codes = (await runDoctor(db.pool, { runtimeRole: ROLE })).findings
    .filter((f) => f.object.includes('notes'))
    .map((f) => f.code)
  expect(codes).toContain('RLS_POLICY_MISSING')
  expect((await rlsStatus(db.pool, [{ name: 'notes' }], { tenantIdType: 'text' }))[0]?.policy).toBe(
    'different',
  )
  const enable = await enableRls(db.pool, [{ name: 'notes' }], { tenantIdType: 'text' })
  expect(enable.changed).toEqual(['public.notes'])
  expect(await seenBy(LONG)).toEqual([])
  expect(await seenBy(SHORT)).toEqual(['short-secret'])
  expect(
    (await runDoctor(db.pool, { runtimeRole: ROLE })).findings.filter((f) =>
      f.object.includes('notes'),
    ),
  ).toEqual([])
})

it('only the tenant id types are casts of the predicate', () => {
  const p = (cast: string) =>
    `(tenant_id = (NULLIF(current_setting('rowtenancy.tenant_id'::text, true), ''::text))::${cast})`
  for (const ok of ['bigint', 'integer', 'uuid', 'text']) {
    expect(isTenantPredicate(p(ok), 'tenant_id')).toBe(true)
  }
  for (const lossy of ['name', 'real', 'smallint', '"char"', 'citext', 'date']) {
    expect(isTenantPredicate(p(lossy), 'tenant_id')).toBe(false)
  }
})
