/**
 * Hostile input to schema generate: a SECURITY DEFINER function whose parameter name or
 * default holds the words "SECURITY DEFINER". It must come out SECURITY INVOKER (set through
 * the catalog, not by editing its text), so the runtime role reads only its tenant's rows.
 */
import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { applyTenantSchema, generateTenantSchema } from '../src/schema/generate/index.js'
import { installTenantTables } from '../src/tenants/index.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'

let db: TestDatabase
/** Roles are cluster-wide: a name of this run's own, not one another run on the server uses too. */
const runtime = `adv_runtime_${randomBytes(4).toString('hex')}`
beforeAll(async () => {
  db = await createTestDatabase('adv_gen')
  await db.pool.query(`create schema tenant_7;
    create table tenant_7.secrets (id int primary key, body text not null);
    create function tenant_7.peek("SECURITY DEFINER" int default 0) returns setof text
      language sql security definer as $$ select body from tenant_7.secrets $$;
    create function tenant_7.peek2(x text default 'SECURITY DEFINER') returns setof text
      language sql security definer as $$ select body from tenant_7.secrets $$;`)
  await installTenantTables(db.pool, { idType: 'integer' })
})
afterAll(() => db.drop())

it('a SECURITY DEFINER function whose header holds the words SECURITY DEFINER is still created SECURITY INVOKER', async () => {
  await generateTenantSchema(db.pool, { fromSchema: 'tenant_7' })
  await applyTenantSchema(db.pool, { fromSchema: 'tenant_7', tenantIdType: 'integer' })
  const { rows } = await db.pool.query(
    `select p.proname, p.prosecdef, pg_get_function_arguments(p.oid) args from pg_proc p join pg_namespace n on n.oid = p.pronamespace
      where n.nspname = 'public' and p.proname like 'peek%' order by 1`,
  )
  expect(rows.map((r) => [r.proname, r.prosecdef])).toEqual([
    ['peek', false],
    ['peek2', false],
  ])
})

it('the runtime role, bound to tenant 1, reads tenant 2 through the carried-over function', async () => {
  await db.pool.query(`insert into public.tenants (id, slug, name) values (1, 'a', 'a'), (2, 'b', 'b') on conflict do nothing;
    insert into public.secrets (tenant_id, id, body) values (1, 1, 'mine'), (2, 1, 'theirs') on conflict do nothing;
    create role "${runtime}";
    grant usage on schema public to "${runtime}"; grant select on public.secrets to "${runtime}";
    grant execute on all functions in schema public to "${runtime}"`)
  const c = await db.pool.connect()
  try {
    await c.query('begin')
    await c.query(`set local role "${runtime}"`)
    await c.query("select set_config('rowtenancy.tenant_id', '1', true)")
    const direct = (await c.query('select body from public.secrets order by 1')).rows.map(
      (r) => r.body,
    )
    const viaFn = (await c.query('select public.peek() as body order by 1')).rows.map((r) => r.body)
    expect(viaFn).toEqual(direct)
  } finally {
    await c.query('rollback')
    c.release()
    await db.pool.query(`drop owned by "${runtime}"; drop role "${runtime}"`).catch(() => {})
  }
})
