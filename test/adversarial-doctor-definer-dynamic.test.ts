/**
 * SECURITY DEFINER functions that run dynamic SQL: plpgsql EXECUTE (plain, RETURN QUERY
 * EXECUTE), query_to_xml / table_to_xml / ts_stat, or a call of an invoker function that does.
 * The statement's text is built at run time, so it names no tenant table doctor could find,
 * and it runs as the function's owner, whom row level security does not bind: the runtime
 * role bound to tenant 1 passes a table name (or a whole query) and reads every tenant's rows.
 * doctor listed only definer functions whose body names a tenant-aware table.
 */
import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { runDoctor } from '../src/doctor/index.js'
import { enableRls } from '../src/schema/rls-apply.js'
import { grantRuntimeRole } from '../src/schema/roles.js'
import { installTenantTables } from '../src/tenants/index.js'
import { createTestDatabase, dropRoles, type TestDatabase } from './helpers/db.js'

const ROLE = `adv_dyn_${randomBytes(3).toString('hex')}`
const OWNERLESS = `adv_dyn_plain_${randomBytes(3).toString('hex')}`
let db: TestDatabase

beforeAll(async () => {
  db = await createTestDatabase('adv_doctor_dynamic')
  await installTenantTables(db.pool, { idType: 'bigint' })
  await db.pool.query(`
    insert into tenants (id, slug, name) values (1, 'one', 'One'), (2, 'two', 'Two');
    create table accounts (tenant_id bigint not null references tenants (id), id bigint not null,
      name text not null, primary key (tenant_id, id));
    insert into accounts values (1, 1, 'one-secret'), (2, 1, 'two-secret');`)
  await enableRls(db.pool, [{ name: 'accounts' }])
  await grantRuntimeRole(db.pool, { role: ROLE })
  await db.pool.query(`
    create function names_in(tbl text) returns setof text language plpgsql security definer as $$
    begin
      return query execute format('select name from %I', tbl);
    end $$;
    create function count_in(tbl regclass) returns bigint language plpgsql security definer as $$
    declare n bigint;
    begin
      execute 'select count(*) from ' || tbl into n;
      return n;
    end $$;
    create function export_xml(q text) returns xml language sql security definer
      as $$ select query_to_xml(q, true, false, '') $$;
    create function dyn_names(tbl text) returns setof text language plpgsql as $$
    begin
      return query execute format('select name from %I', tbl);
    end $$;
    create function names_through_call(tbl text) returns setof text language sql security definer
      as 'select * from dyn_names(tbl)';
    -- holds: a plain (invoker) function with EXECUTE runs under RLS
    create function names_invoker(tbl text) returns setof text language plpgsql as $$
    begin
      return query execute format('select name from %I', tbl);
    end $$;
    -- holds: the runtime role may not execute it
    create function names_private(tbl text) returns setof text language plpgsql security definer as $$
    begin
      return query execute format('select name from %I', tbl);
    end $$;
    revoke execute on function names_private(text) from public;
    -- holds: its owner is bound by row level security (neither owner of a tenant table nor bypassing)
    create role "${OWNERLESS}" nologin;
    grant usage on schema public to "${OWNERLESS}";
    grant select on accounts to "${OWNERLESS}";
    create function names_as_plain(tbl text) returns setof text language plpgsql security definer as $$
    begin
      return query execute format('select name from %I', tbl);
    end $$;
    alter function names_as_plain(text) owner to "${OWNERLESS}";`)
  // Dynamic SQL that hides behind string literals, comments and other statements: still found.
  await db.pool.query(`
    create function names_for_in(tbl text) returns setof text language plpgsql security definer
      set search_path = pg_catalog, pg_temp as $$
    declare r record;
    begin
      for r in execute format('select name from public.%I', tbl) loop return next r.name; end loop;
    end $$;
    create function names_cursor(tbl text) returns setof text language plpgsql security definer
      set search_path = pg_catalog, pg_temp as $$
    declare c refcursor; v text;
    begin
      open c for execute format('select name from public.%I', tbl);
      loop fetch c into v; exit when not found; return next v; end loop;
    end $$;
    create function names_after_literals(tbl text) returns setof text language plpgsql security definer
      set search_path = pg_catalog, pg_temp as $$
    declare note text := E'it\\'s -- no comment; ' || $q$ 'still' $q$;
    begin
      if tbl <> '' then return query execute 'select name from public.' || pg_catalog.quote_ident(tbl); end if;
    end $$;`)
  // No dynamic SQL: the word EXECUTE only in string literals, comments, the EXECUTE privilege,
  // and a trigger's DDL. Each was reported, and every function calling one by name with it.
  await db.pool.query(`
    create function may_call(f text) returns boolean language sql security definer
      set search_path = pg_catalog, pg_temp
      as $$ select has_function_privilege(current_user, f, 'EXECUTE') $$;
    create function calls_may_call() returns boolean language sql security definer
      set search_path = pg_catalog, pg_temp as $$ select public.may_call('public.say()') $$;
    create function say() returns void language plpgsql security definer
      set search_path = pg_catalog, pg_temp as $$
    begin
      raise notice 'nothing to execute'; -- execute nothing
      raise notice $m$ ; execute $m$; /* ; execute /* nested */ ; execute */
    end $$;
    create function regrant() returns void language plpgsql security definer
      set search_path = pg_catalog, pg_temp as $$
    begin
      grant execute on function public.say() to public;
      revoke grant option for execute on function public.say() from public;
      create trigger t after insert on public.notes for each row execute function public.noop();
    end $$;
    create table notes (body text);
    create function noop() returns trigger language plpgsql
      set search_path = pg_catalog, pg_temp as $$ begin return null; end $$;`)
}, 60_000)

afterAll(async () => {
  await db?.drop()
  await dropRoles([ROLE, OWNERLESS])
})

async function asTenant1(text: string): Promise<unknown[]> {
  const c = await db.pool.connect()
  try {
    await c.query('begin')
    await c.query(`set local role "${ROLE}"`)
    await c.query("select set_config('rowtenancy.tenant_id', '1', true)")
    return (await c.query(text)).rows.map((r) => Object.values(r)[0])
  } finally {
    await c.query('rollback').catch(() => {})
    c.release()
  }
}

const dynamicFindings = async () =>
  (await runDoctor(db.pool, { runtimeRole: ROLE })).findings.filter(
    (f) => f.code === 'SECURITY_DEFINER_DYNAMIC_SQL',
  )

it('the runtime role bound to tenant 1 reads tenant 2 through each dynamic definer function', async () => {
  expect(await asTenant1("select names_in('accounts')")).toEqual(['one-secret', 'two-secret'])
  expect(await asTenant1("select count_in('accounts')")).toEqual(['2'])
  expect(String(await asTenant1("select export_xml('select name from accounts')"))).toMatch(
    /two-secret/,
  )
  expect(await asTenant1("select names_through_call('accounts')")).toEqual([
    'one-secret',
    'two-secret',
  ])
  for (const f of ['names_for_in', 'names_cursor', 'names_after_literals'])
    expect(await asTenant1(`select ${f}('accounts')`)).toEqual(['one-secret', 'two-secret'])
  // and the shapes that hold
  expect(await asTenant1("select names_invoker('accounts')")).toEqual(['one-secret'])
  expect(await asTenant1("select names_as_plain('accounts')")).toEqual(['one-secret'])
  await expect(asTenant1("select names_private('accounts')")).rejects.toThrow(/permission denied/)
})

it('doctor reports each, and none of the shapes that hold', async () => {
  const found = await dynamicFindings()
  expect(found.map((f) => `${f.severity} ${f.object}`)).toEqual([
    'error public.count_in(tbl regclass)',
    'error public.export_xml(q text)',
    'error public.names_after_literals(tbl text)',
    'error public.names_cursor(tbl text)',
    'error public.names_for_in(tbl text)',
    'error public.names_in(tbl text)',
    'error public.names_through_call(tbl text)',
  ])
  expect(found[0]!.message).toMatch(/dynamic SQL/)
  expect(found[0]!.fix).toMatch(/security invoker|revoke execute/)
  // the name-based check still says nothing of them: the table names are hidden
  const report = await runDoctor(db.pool, { runtimeRole: ROLE })
  expect(report.findings.filter((f) => f.code === 'SECURITY_DEFINER_FUNCTION')).toEqual([])
  // without a runtime role, every definer function that runs dynamic SQL as such an owner
  const all = (await runDoctor(db.pool)).findings
    .filter((f) => f.code === 'SECURITY_DEFINER_DYNAMIC_SQL')
    .map((f) => f.object)
  expect(all).toContain('public.names_private(tbl text)')
  expect(all).not.toContain('public.names_as_plain(tbl text)')
})

it('EXECUTE in a string literal, a comment, a privilege or trigger DDL is no dynamic SQL (nor for its callers)', async () => {
  // what doctor used to report (an error, exit code 1): the word anywhere outside a comment
  const found = (await dynamicFindings()).map((f) => f.object)
  for (const fn of [
    'public.may_call(f text)',
    'public.calls_may_call()',
    'public.say()',
    'public.regrant()',
  ])
    expect(found).not.toContain(fn)
  // they run no statement a caller shapes
  expect(await asTenant1("select may_call('public.say()')")).toEqual([true])
})
