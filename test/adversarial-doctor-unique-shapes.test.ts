/**
 * Uniqueness that crosses tenants, in the shapes besides a missing or collated tenant key
 * (test/adversarial-doctor-unique-collation.test.ts): each attack below has tenant 1, bound
 * under row level security, learn that tenant 2 stored `boss@two.test` because its own insert
 * fails with a unique or exclusion violation (tenant 1 reads none of tenant 2's rows).
 *
 * Not reported before: a unique index that leads with the tenant column under an operator
 * class of its own, whose comparison deems different tenant ids equal (here: ids compared by
 * their tens, so tenants 1 and 2 are one), even one that keeps the type's own `=` operator
 * and swaps only the comparison function (btree uniqueness runs the function); and an
 * exclusion constraint comparing the tenant column with an operator spelled `=` that is not
 * the type's equality (the check read the operator's name). An exclusion constraint rechecks
 * each candidate row with its operators, so one with the type's own `=` holds tenants apart
 * under any operator class.
 *
 * Reported before, kept here as regressions: the tenant column only inside an expression,
 * only as an INCLUDE column, a partial index whose predicate lets two tenants in, an
 * exclusion constraint without the tenant column, and a partition's own unique index over a
 * partition that holds two tenants. And the shapes that hold tenants apart, reported nothing.
 */
import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runDoctor } from '../src/doctor/index.js'
import { enableRls } from '../src/schema/rls-apply.js'
import { grantRuntimeRole } from '../src/schema/roles.js'
import { installTenantTables } from '../src/tenants/index.js'
import { createTestDatabase, dropRoles, type TestDatabase } from './helpers/db.js'

const ROLE = `adv_ushape_${randomBytes(3).toString('hex')}`
let db: TestDatabase

beforeAll(async () => {
  db = await createTestDatabase('adv_doctor_unique_shapes')
  await installTenantTables(db.pool, { idType: 'bigint' })
  await db.pool.query(`
    create extension btree_gist;
    insert into tenants (id, slug, name) values (1, 'one', 'One'), (2, 'two', 'Two');
    create table users (tenant_id bigint not null references tenants (id), id bigint not null,
      email text not null, nick text, primary key (tenant_id, id));
    insert into users values (2, 1, 'boss@two.test', null);

    -- bigints compared by their tens: 1 and 2 are equal
    create function tens_cmp(a int8, b int8) returns int language sql immutable
      as $$ select case when a / 10 < b / 10 then -1 when a / 10 > b / 10 then 1 else 0 end $$;
    create function tens_eq(a int8, b int8) returns bool language sql immutable as $$ select a / 10 = b / 10 $$;
    create function tens_lt(a int8, b int8) returns bool language sql immutable as $$ select a / 10 < b / 10 $$;
    create function tens_le(a int8, b int8) returns bool language sql immutable as $$ select a / 10 <= b / 10 $$;
    create function tens_gt(a int8, b int8) returns bool language sql immutable as $$ select a / 10 > b / 10 $$;
    create function tens_ge(a int8, b int8) returns bool language sql immutable as $$ select a / 10 >= b / 10 $$;
    create operator =~~ (function = tens_eq, leftarg = int8, rightarg = int8, commutator = =~~);
    create operator <~~ (function = tens_lt, leftarg = int8, rightarg = int8);
    create operator <=~~ (function = tens_le, leftarg = int8, rightarg = int8);
    create operator >~~ (function = tens_gt, leftarg = int8, rightarg = int8);
    create operator >=~~ (function = tens_ge, leftarg = int8, rightarg = int8);
    create operator class tens_ops for type int8 using btree as operator 1 <~~, operator 2 <=~~,
      operator 3 =~~, operator 4 >=~~, operator 5 >~~, function 1 tens_cmp(int8, int8);
    -- the type's own operators, the tens comparison function
    create operator class sneaky_ops for type int8 using btree as operator 1 <, operator 2 <=,
      operator 3 =, operator 4 >=, operator 5 >, function 1 tens_cmp(int8, int8);
    -- an operator spelled = that is not bigint's equality
    create operator public.= (function = tens_eq, leftarg = int8, rightarg = int8, commutator = operator(public.=));
    create operator class spelled_eq_ops for type int8 using btree as operator 1 <~~, operator 2 <=~~,
      operator 3 public.=, operator 4 >=~~, operator 5 >~~, function 1 tens_cmp(int8, int8);`)
  await enableRls(db.pool, [{ name: 'users' }])
  await grantRuntimeRole(db.pool, { role: ROLE })
}, 60_000)

afterAll(async () => {
  await db?.drop()
  await dropRoles([ROLE])
})

/** Inserts a user as the runtime role bound to `tenant`; the error, if any. */
async function insertAs(
  tenant: number,
  email: string,
  nick: string | null = null,
): Promise<string | null> {
  const c = await db.pool.connect()
  try {
    await c.query('begin')
    await c.query(`set local role "${ROLE}"`)
    await c.query("select set_config('rowtenancy.tenant_id', $1, true)", [String(tenant)])
    await c.query('insert into users values ($1, 2, $2, $3)', [tenant, email, nick])
    return null
  } catch (e) {
    return `${(e as Error).message} ${(e as { detail?: string }).detail ?? ''}`
  } finally {
    await c.query('rollback').catch(() => {})
    c.release()
  }
}

/** The key findings on `users`, with the index or constraint `ddl` made and then dropped. */
async function findingsWith(ddl: string, drop: string, attack: () => Promise<void>) {
  await db.pool.query(ddl)
  try {
    await attack()
    return (await runDoctor(db.pool, { runtimeRole: ROLE })).findings.filter((f) =>
      f.object.startsWith('public.users.'),
    )
  } finally {
    await db.pool.query(drop)
  }
}

it('tenant 1 sees none of tenant 2 rows', async () => {
  const c = await db.pool.connect()
  try {
    await c.query('begin')
    await c.query(`set local role "${ROLE}"`)
    await c.query("select set_config('rowtenancy.tenant_id', '1', true)")
    expect((await c.query('select * from users')).rows).toEqual([])
  } finally {
    await c.query('rollback')
    c.release()
  }
})

describe('shapes where tenant 1 learns what tenant 2 stored', () => {
  const index = (name: string, def: string) => ({
    name,
    ddl: `create unique index ${name} on users ${def}`,
    drop: `drop index ${name}`,
  })
  const constraint = (name: string, def: string) => ({
    name,
    ddl: `alter table users add constraint ${name} ${def}`,
    drop: `alter table users drop constraint ${name}`,
  })
  const cases = [
    {
      shape: 'a custom operator class on the tenant key (tenant ids compared by their tens)',
      ...index('u_tens', '(tenant_id tens_ops, email)'),
      message: /operator class tens_ops, not its type's default/,
    },
    {
      shape: 'a custom operator class with the type own = but a looser comparison function',
      ...index('u_sneaky', '(tenant_id sneaky_ops, email)'),
      message: /operator class sneaky_ops, not its type's default/,
    },
    {
      shape:
        'an exclusion constraint: tenant_id with an operator spelled = that is not bigint equality',
      ...constraint(
        'x_spelled',
        'exclude using btree (tenant_id spelled_eq_ops with operator(public.=), email with =)',
      ),
      message: /with operator\(public\.=\), not its type's equality/,
    },
    {
      shape: '(covered before) an exclusion constraint: tenant_id with another operator',
      ...constraint('x_tens', 'exclude using btree (tenant_id tens_ops with =~~, email with =)'),
      message: /with =~~, not =/,
    },
    {
      shape: '(covered before) an exclusion constraint without the tenant column',
      ...constraint('x_email', 'exclude using gist (email with =)'),
      message: /does not include tenant_id/,
    },
    {
      shape: '(covered before) the tenant column only inside an expression',
      ...index('u_expr', '((tenant_id / 10), email)'),
      message: /only inside an expression/,
    },
    {
      shape: '(covered before) the tenant column only as an INCLUDE column',
      ...index('u_include', '(email) include (tenant_id)'),
      message: /only as an INCLUDE column/,
    },
    {
      shape: '(covered before) a partial index whose predicate lets two tenants in',
      ...index('u_partial', '(email) where tenant_id in (1, 2)'),
      message: /does not include tenant_id/,
    },
  ]
  for (const c of cases) {
    it(c.shape, async () => {
      const found = await findingsWith(c.ddl, c.drop, async () => {
        expect(await insertAs(1, 'boss@two.test')).toMatch(
          new RegExp(
            `(duplicate key value violates unique|conflicting key value violates exclusion) constraint "${c.name}"`,
          ),
        )
        expect(await insertAs(1, 'nobody@two.test')).toBeNull()
      })
      expect(found.map((f) => `${f.code} ${f.severity} ${f.object}`)).toEqual([
        `UNIQUE_WITHOUT_TENANT error public.users.${c.name}`,
      ])
      expect(found[0]!.message).toMatch(c.message)
    })
  }
})

describe('shapes that hold tenants apart: no finding', () => {
  const cases = [
    [
      'the default operator class, named',
      'create unique index s_named on users (tenant_id int8_ops, email)',
    ],
    [
      'tenant-leading, descending',
      'create unique index s_desc on users (tenant_id desc nulls first, email)',
    ],
    [
      'tenant-leading, a partial index',
      "create unique index s_partial on users (tenant_id, email) where email <> ''",
    ],
    [
      'tenant-leading, an INCLUDE column',
      'create unique index s_include on users (tenant_id, email) include (nick)',
    ],
    [
      'tenant-leading, nulls not distinct',
      'alter table users add constraint s_nnd unique nulls not distinct (tenant_id, nick, email)',
    ],
    [
      'an exclusion constraint, gist, tenant_id with =',
      'alter table users add constraint s_gist exclude using gist (tenant_id with =, email with =)',
    ],
    [
      'an exclusion constraint, btree, tenant_id with =',
      'alter table users add constraint s_btree exclude using btree (tenant_id with =, email with =)',
    ],
    [
      // an exclusion constraint rechecks each candidate row with its operators: bigint's own =
      'an exclusion constraint, tenant_id with the type own = under a custom operator class',
      'alter table users add constraint s_sneaky exclude using btree (tenant_id sneaky_ops with =, email with =)',
    ],
  ] as const
  for (const [shape, ddl] of cases) {
    it(shape, async () => {
      const name = ddl.match(/ (s_\w+) /)![1]!
      const drop = ddl.startsWith('alter')
        ? `alter table users drop constraint ${name}`
        : `drop index ${name}`
      const found = await findingsWith(ddl, drop, async () => {
        expect(await insertAs(1, 'boss@two.test')).toBeNull()
      })
      expect(found).toEqual([])
    })
  }
})

it('(covered before) a unique index of its own on a partition that holds two tenants', async () => {
  await db.pool.query(`
    create table ev (tenant_id bigint not null references tenants (id), id bigint not null,
      email text not null, primary key (tenant_id, id)) partition by list (tenant_id);
    create table ev_12 partition of ev for values in (1, 2);
    create unique index ev_12_email on ev_12 (email);
    insert into ev values (2, 1, 'boss@two.test');`)
  await enableRls(db.pool, [{ name: 'ev' }])
  await grantRuntimeRole(db.pool, { role: ROLE })
  const c = await db.pool.connect()
  try {
    await c.query('begin')
    await c.query(`set local role "${ROLE}"`)
    await c.query("select set_config('rowtenancy.tenant_id', '1', true)")
    expect((await c.query('select * from ev')).rows).toEqual([])
    const err = await c
      .query(`insert into ev values (1, 2, 'boss@two.test')`)
      .catch((e: Error) => e)
    expect(String(err)).toMatch(/duplicate key value violates unique constraint "ev_12_email"/)
  } finally {
    await c.query('rollback')
    c.release()
  }
  const found = (await runDoctor(db.pool, { runtimeRole: ROLE })).findings
    .filter((f) => f.code === 'UNIQUE_WITHOUT_TENANT' && f.object.startsWith('public.ev'))
    .map((f) => `${f.code} ${f.severity} ${f.object}`)
  expect(found).toEqual(['UNIQUE_WITHOUT_TENANT error public.ev_12.ev_12_email'])
})
