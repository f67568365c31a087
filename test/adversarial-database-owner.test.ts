/**
 * A runtime role that owns the database is a member of `pg_database_owner` (PostgreSQL 14+)
 * without a `pg_auth_members` row: it may alter a table owned by `pg_database_owner`, turn
 * FORCE ROW LEVEL SECURITY off and, as an owner, read every tenant's rows. The role graph
 * walked pg_auth_members only, so neither the start-up check nor doctor saw the ownership.
 */
import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { neutralStatementsTrusted } from '../src/db/neutral-statement.js'
import { inspectRuntimeRole, runtimeRoleProblems } from '../src/db/role-check.js'
import { runDoctor } from '../src/doctor/index.js'
import { enableRls } from '../src/schema/rls-apply.js'
import { grantRuntimeRole } from '../src/schema/roles.js'
import { installTenantTables } from '../src/tenants/index.js'
import { connectAs, createTestDatabase, dropRoles, type TestDatabase } from './helpers/db.js'

const ROLE = `adv_dbo_${randomBytes(3).toString('hex')}`
let db: TestDatabase

beforeAll(async () => {
  db = await createTestDatabase('adv_db_owner')
  await installTenantTables(db.pool, { idType: 'bigint' })
  await db.pool.query(`
    insert into tenants (id, slug, name) values (1, 'one', 'One'), (2, 'two', 'Two');
    create table notes (tenant_id bigint not null references tenants (id), id bigint not null, body text,
      primary key (tenant_id, id));
    insert into notes values (1, 1, 'one'), (2, 1, 'two secret');`)
  await enableRls(db.pool, [{ name: 'notes' }])
  await grantRuntimeRole(db.pool, { role: ROLE })
  await db.pool.query(`alter role "${ROLE}" login password 'p';
    alter table notes owner to pg_database_owner;
    alter database "${db.name}" owner to "${ROLE}"`)
}, 60_000)
afterAll(async () => {
  await db?.pool.query(`alter database "${db.name}" owner to current_user`).catch(() => {})
  await db?.drop()
  await dropRoles([ROLE])
})

it('the database owner owns what pg_database_owner owns: refused and reported', async () => {
  const c = await connectAs(db.url, ROLE, 'p')
  try {
    await c.query('begin')
    await c.query("select set_config('rowtenancy.tenant_id', '1', true)")
    await c.query('alter table notes no force row level security')
    const seen = (await c.query('select body from notes order by 1')).rows.map((r) => r.body)
    expect(seen).toEqual(['one', 'two secret'])
    await c.query('rollback')
    const problems = runtimeRoleProblems(await inspectRuntimeRole(c))
    expect(problems.join('\n')).toMatch(/owns tenant-aware tables \(public\.notes\)/)
  } finally {
    await c.end()
  }
  const report = await runDoctor(db.pool, { runtimeRole: ROLE })
  expect(report.findings.filter((f) => f.code === 'ROLE_OWNS_TABLE').map((f) => f.object)).toEqual([
    `role ${ROLE} -> public.notes`,
  ])
})

it('a function pg_database_owner owns keeps the tenant pool resetting after every statement', async () => {
  await db.pool.query(`alter table notes owner to current_user;
    revoke create on database "${db.name}" from "${ROLE}";
    revoke create on schema public from pg_database_owner;
    create function public.one() returns int language sql as 'select 1';
    alter function public.one() owner to pg_database_owner;`)
  const c = await connectAs(db.url, ROLE, 'p')
  try {
    // the owner of a function may replace what a statement judged neutral calls
    expect(await neutralStatementsTrusted(c)).toBe(false)
  } finally {
    await c.end()
  }
})
