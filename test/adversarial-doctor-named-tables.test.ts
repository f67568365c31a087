/**
 * doctor with the tenant-aware tables named (the config's `tables`, as the CLI passes them): a
 * partition or inheritance child made after `rls enable` has no policy of its own, and a query
 * that names it sees every tenant's rows. Naming the parent must audit its children too, as
 * `rls enable` on the parent covers them.
 */
import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { runDoctor } from '../src/doctor/index.js'
import { enableRls } from '../src/schema/rls-apply.js'
import { grantRuntimeRole } from '../src/schema/roles.js'
import { installTenantTables } from '../src/tenants/index.js'
import { cli } from './helpers/cli.js'
import { createTestDatabase, dropRoles, type TestDatabase } from './helpers/db.js'

const ROLE = `adv_named_${randomBytes(3).toString('hex')}`
let db: TestDatabase

beforeAll(async () => {
  db = await createTestDatabase('adv_doctor_named')
  await installTenantTables(db.pool, { idType: 'bigint' })
  await db.pool.query(`
    insert into tenants (id, slug, name) values (1, 'one', 'One'), (2, 'two', 'Two');
    create table ev (tenant_id bigint not null references tenants (id), id bigint not null, body text,
      primary key (tenant_id, id)) partition by list (tenant_id);
    create table ev_1 partition of ev for values in (1);
    create table hist (tenant_id bigint not null references tenants (id), id bigint not null, body text,
      primary key (tenant_id, id));`)
  await enableRls(db.pool, [{ name: 'ev' }, { name: 'hist' }])
  await db.pool.query(`
    create table ev_2 partition of ev for values in (2);
    create table hist_2024 () inherits (hist);
    insert into ev values (2, 1, 'ev two secret');
    insert into hist_2024 values (2, 1, 'hist two secret');`)
  await grantRuntimeRole(db.pool, { role: ROLE })
}, 60_000)

afterAll(async () => {
  await db?.drop()
  await dropRoles([ROLE])
})

it('a child made after rls enable is audited when only its parent is named', async () => {
  const report = await runDoctor(db.pool, { tables: ['ev', 'hist'], runtimeRole: ROLE })
  const found = report.findings.map((f) => `${f.code} ${f.object}`)
  expect(found).toContain('RLS_NOT_ENABLED public.ev_2')
  expect(found).toContain('RLS_NOT_ENABLED public.hist_2024')
  expect(report.checked.tables).toEqual([
    'public.ev',
    'public.hist',
    'public.ev_1',
    'public.ev_2',
    'public.hist_2024',
  ])
  const cliArgs = ['--database-url', db.url, '--tables', 'ev,hist']
  const doctor = JSON.parse((await cli(['doctor', '--json', ...cliArgs])).stdout)
  expect(doctor.findings.map((f: { object: string }) => f.object)).toContain('public.ev_2')
  const status = JSON.parse((await cli(['rls', 'status', '--json', ...cliArgs])).stdout)
  expect(status.map((s: { table: string; policy: string }) => `${s.table} ${s.policy}`)).toEqual([
    'public.ev ok',
    'public.hist ok',
    'public.ev_1 ok',
    'public.ev_2 missing',
    'public.hist_2024 missing',
  ])
  await enableRls(db.pool, [{ name: 'ev' }, { name: 'hist' }])
  const again = await runDoctor(db.pool, { tables: ['ev', 'hist'], runtimeRole: ROLE })
  expect(again.findings.map((f) => `${f.code} ${f.object}`)).toEqual([])
})
