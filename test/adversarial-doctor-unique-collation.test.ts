/**
 * Uniqueness that crosses tenants tells one tenant what another stored (the unique violation
 * is the answer). A unique index that does not lead with the tenant column, an expression
 * index (`lower(email)`) among them, was reported already (UNIQUE_WITHOUT_TENANT). Not
 * reported: one that leads with the tenant column but compares it under a nondeterministic
 * collation of the index's own (`(tenant_id collate ci, email)`), while the column itself is
 * deterministic: with text tenant ids, tenant "ACME" and tenant "acme" share one key space.
 * A nondeterministic collation on another key column (the email) stays inside the tenant.
 */
import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { runDoctor } from '../src/doctor/index.js'
import { enableRls } from '../src/schema/rls-apply.js'
import { grantRuntimeRole } from '../src/schema/roles.js'
import { installTenantTables } from '../src/tenants/index.js'
import { createTestDatabase, dropRoles, type TestDatabase } from './helpers/db.js'

const ROLE = `adv_uci_${randomBytes(3).toString('hex')}`
let db: TestDatabase

beforeAll(async () => {
  db = await createTestDatabase('adv_doctor_unique_ci')
  await installTenantTables(db.pool, { idType: 'text' })
  await db.pool.query(`
    create collation ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
    insert into tenants (id, slug, name) values ('acme', 'acme-lower', 'acme'), ('ACME', 'acme-upper', 'ACME');
    create table users (tenant_id text collate "C" not null references tenants (id), id bigint not null,
      email text not null, login text collate ci not null, primary key (tenant_id, id));
    create unique index users_email on users (tenant_id collate ci, email);
    create unique index users_login on users (tenant_id, login);
    create unique index users_lower_email on users (tenant_id, lower(email));
    insert into users values ('acme', 1, 'boss@acme.test', 'boss');`)
  await enableRls(db.pool, [{ name: 'users' }], { tenantIdType: 'text' })
  await grantRuntimeRole(db.pool, { role: ROLE })
}, 60_000)

afterAll(async () => {
  await db?.drop()
  await dropRoles([ROLE])
})

/** Inserts a user as the runtime role bound to `tenant`; the error, if any. */
async function insertAs(tenant: string, email: string, login: string): Promise<string | null> {
  const c = await db.pool.connect()
  try {
    await c.query('begin')
    await c.query(`set local role "${ROLE}"`)
    await c.query("select set_config('rowtenancy.tenant_id', $1, true)", [tenant])
    await c.query('insert into users values ($1, 2, $2, $3)', [tenant, email, login])
    return null
  } catch (e) {
    return `${(e as Error).message} ${(e as { detail?: string }).detail ?? ''}`
  } finally {
    await c.query('rollback').catch(() => {})
    c.release()
  }
}

const keyFindings = async () =>
  (await runDoctor(db.pool, { runtimeRole: ROLE })).findings
    .filter((f) => f.object.startsWith('public.users.'))
    .map((f) => `${f.code} ${f.severity} ${f.object}`)

it('tenant "ACME" learns that tenant "acme" has boss@acme.test; doctor reports the index', async () => {
  // Rows of its own it cannot see: row level security holds for reads.
  expect(await insertAs('ACME', 'boss@acme.test', 'other')).toMatch(
    /duplicate key value violates unique constraint "users_email"/,
  )
  expect(await insertAs('ACME', 'nobody@acme.test', 'other')).toBeNull()
  // the email collation-free, login case-insensitive inside the tenant: no crossing
  expect(await insertAs('ACME', 'x@acme.test', 'BOSS')).toBeNull()
  const found = (await runDoctor(db.pool, { runtimeRole: ROLE })).findings.filter((f) =>
    f.object.startsWith('public.users.'),
  )
  expect(found.map((f) => `${f.code} ${f.severity} ${f.object}`)).toEqual([
    'UNIQUE_WITHOUT_TENANT error public.users.users_email',
  ])
  expect(found[0]!.message).toMatch(/nondeterministic collation ci/)
  expect(found[0]!.fix).toMatch(/collate "C"|without the collation/)
})

it('(covered before) a unique expression index without the tenant column', async () => {
  await db.pool.query('create unique index users_lower_only on users (lower(email))')
  try {
    expect(await insertAs('ACME', 'BOSS@acme.test', 'other2')).toMatch(/users_lower_only/)
    expect(await keyFindings()).toEqual([
      'UNIQUE_WITHOUT_TENANT error public.users.users_email',
      'UNIQUE_WITHOUT_TENANT error public.users.users_lower_only',
    ])
  } finally {
    await db.pool.query('drop index users_lower_only')
  }
})

it('a unique constraint over a column whose own collation is nondeterministic, not leading with the tenant', async () => {
  await db.pool.query('alter table users add constraint users_login_global unique (login)')
  try {
    expect(await insertAs('ACME', 'y@acme.test', 'BOSS')).toMatch(/users_login_global/)
    expect(await keyFindings()).toEqual([
      'UNIQUE_WITHOUT_TENANT error public.users.users_email',
      'UNIQUE_WITHOUT_TENANT error public.users.users_login_global',
    ])
  } finally {
    await db.pool.query('alter table users drop constraint users_login_global')
  }
})

it('an operator class of its own on the tenant key that compares text case-insensitively', async () => {
  await db.pool.query(`
    create function ci_cmp(a text, b text) returns int language sql immutable
      as $$ select bttextcmp(lower(a), lower(b)) $$;
    create operator class ci_text_ops for type text using btree as operator 1 <, operator 2 <=,
      operator 3 =, operator 4 >=, operator 5 >, function 1 ci_cmp(text, text);
    create unique index users_email_ci_ops on users (tenant_id ci_text_ops, email);
    drop index users_email;`)
  try {
    expect(await insertAs('ACME', 'boss@acme.test', 'other3')).toMatch(/users_email_ci_ops/)
    const found = (await runDoctor(db.pool, { runtimeRole: ROLE })).findings.filter((f) =>
      f.object.endsWith('.users_email_ci_ops'),
    )
    expect(found.map((f) => `${f.code} ${f.severity} ${f.object}`)).toEqual([
      'UNIQUE_WITHOUT_TENANT error public.users.users_email_ci_ops',
    ])
    expect(found[0]!.message).toMatch(/operator class ci_text_ops, not its type's default/)
    expect(found[0]!.fix).toMatch(/default operator class \(without ci_text_ops\)/)
  } finally {
    await db.pool.query(
      `drop index users_email_ci_ops; drop operator class ci_text_ops using btree;
       create unique index users_email on users (tenant_id collate ci, email)`,
    )
  }
})

it('a shipped operator class whose = is the type own (text_pattern_ops): no finding', async () => {
  await db.pool.query(
    'create unique index users_email_pattern on users (tenant_id text_pattern_ops, email)',
  )
  try {
    expect(await insertAs('ACME', 'boss@acme.test', 'other4')).toMatch(/users_email"/)
    expect(await keyFindings()).toEqual(['UNIQUE_WITHOUT_TENANT error public.users.users_email'])
  } finally {
    await db.pool.query('drop index users_email_pattern')
  }
})

it('an exclusion constraint over text tenant ids with text =: no finding', async () => {
  await db.pool.query(`create extension if not exists btree_gist;
    alter table users add constraint users_email_excl exclude using gist (tenant_id with =, email with =)`)
  try {
    expect(await insertAs('ACME', 'boss@acme.test', 'other5')).toMatch(/users_email"/)
    expect(await keyFindings()).toEqual(['UNIQUE_WITHOUT_TENANT error public.users.users_email'])
  } finally {
    await db.pool.query('alter table users drop constraint users_email_excl')
  }
})
