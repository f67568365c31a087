/**
 * A runtime role that is a member (by any path) of `pg_execute_server_program`,
 * `pg_write_server_files` or `pg_read_server_files` is as good as a superuser: raw SQL runs
 * `COPY ... FROM PROGRAM 'psql ...'` as the server's operating system user and reads every
 * tenant's rows. It is neither superuser nor BYPASSRLS, so the role graph let it through:
 * the tenancy must refuse it at start-up and the doctor must report it.
 */
import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { inspectRuntimeRole, runtimeRoleProblems } from '../src/db/role-check.js'
import { runDoctor } from '../src/doctor/index.js'
import { grantRuntimeRole } from '../src/schema/roles.js'
import { installTenantTables } from '../src/tenants/index.js'
import { connectAs, createTestDatabase, dropRoles, type TestDatabase } from './helpers/db.js'

const ROLE = `adv_srv_${randomBytes(3).toString('hex')}`
const MIDDLE = `${ROLE}_ops`
const REPL = `${ROLE}_repl`
const REPL_MEMBER = `${ROLE}_rmem`
let db: TestDatabase

beforeAll(async () => {
  db = await createTestDatabase('adv_server_roles')
  await installTenantTables(db.pool, { idType: 'bigint' })
  await grantRuntimeRole(db.pool, { role: ROLE })
  await db.pool.query(`alter role "${ROLE}" login password 'p'; create role "${MIDDLE}" nologin noinherit;
    grant pg_execute_server_program to "${MIDDLE}"; grant "${MIDDLE}" to "${ROLE}";
    grant pg_read_server_files to "${ROLE}"`)
}, 60_000)
afterAll(async () => {
  await db?.drop()
  await dropRoles([ROLE, MIDDLE, REPL, REPL_MEMBER])
})

it('a member of pg_execute_server_program runs programs on the server; it is refused and reported', async () => {
  const c = await connectAs(db.url, ROLE, 'p')
  try {
    // not superuser, not BYPASSRLS: yet a program of its choosing runs as the server's user
    await c.query('set role pg_execute_server_program') // through a NOINHERIT role: SET ROLE reaches it
    await c.query('create temp table out (line text)').catch(() => {}) // TEMP may be revoked
    const ran = await c
      .query(`copy (select 1) to program 'cat > /dev/null'`)
      .then(() => true)
      .catch(() => false)
    expect(ran).toBe(true)
    await c.query('reset role')
    const problems = runtimeRoleProblems(await inspectRuntimeRole(c))
    expect(problems.join('\n')).toMatch(/pg_execute_server_program/)
    expect(problems.join('\n')).toMatch(/pg_read_server_files/)
  } finally {
    await c.end()
  }
  const report = await runDoctor(db.pool, { runtimeRole: ROLE })
  const unsafe = report.findings
    .filter((f) => f.code === 'ROLE_MEMBER_OF_UNSAFE')
    .map((f) => f.object)
  expect(unsafe).toEqual([
    `role ${ROLE} -> pg_execute_server_program`,
    `role ${ROLE} -> pg_read_server_files`,
  ])
})

it('a runtime role with REPLICATION, or a member of such a role, is refused and reported', async () => {
  await grantRuntimeRole(db.pool, { role: REPL })
  await grantRuntimeRole(db.pool, { role: REPL_MEMBER })
  await db.pool.query(`alter role "${REPL}" replication login password 'p';
    alter role "${REPL_MEMBER}" login password 'p'; grant "${REPL}" to "${REPL_MEMBER}"`)
  const slot = `adv_${randomBytes(3).toString('hex')}`
  const c = await connectAs(db.url, REPL_MEMBER, 'p')
  try {
    // what REPLICATION gives a member after one SET ROLE: the server's replication functions
    await c.query(`set role "${REPL}"`)
    await c.query('select pg_create_physical_replication_slot($1)', [slot])
    await c.query('select pg_drop_replication_slot($1)', [slot])
    await c.query('reset role')
    const problems = runtimeRoleProblems(await inspectRuntimeRole(c)).join('\n')
    expect(problems).toMatch(/member of a REPLICATION role/)
  } finally {
    await c.end()
  }
  const codes = (role: string) =>
    runDoctor(db.pool, { runtimeRole: role }).then((r) =>
      r.findings.filter((f) => f.object.startsWith(`role ${role}`)).map((f) => f.code),
    )
  expect(await codes(REPL)).toContain('ROLE_REPLICATION')
  expect(await codes(REPL_MEMBER)).toContain('ROLE_MEMBER_OF_UNSAFE')
})
