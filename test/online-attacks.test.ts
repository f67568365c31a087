/**
 * Hybrid serving under attack: a request for one tenant never runs its
 * unfiltered (schema-form) statement against the shared tables or another
 * tenant's legacy schema. Covered: a legacy schema missing a table (the
 * unqualified name falls through the search_path), a legacy schema named like
 * the runtime role ("$user" in the default search_path), hostile schema names,
 * a pool of one connection alternating schema- and shared-placed tenants with
 * session state left by raw SQL, savepoints and nested transactions, a tenant
 * with no serving row, no tenant at all, and a transaction spanning a cut-over.
 */
import { randomBytes } from 'node:crypto'
import { sql } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  createTenancy,
  MissingTenantError,
  runWithTenant,
  type Tenancy,
  tenantPoolOf,
} from '../src/entries/index.js'
import { captureDdl, dropTriggerSql, installTriggerSql } from '../src/migrate/online/capture-sql.js'
import { migrateOnline } from '../src/migrate/online/index.js'
import { guardLegacySchema, LEGACY_POLICY } from '../src/migrate/online/legacy-rls.js'
import { quoteIdent, quoteLiteral } from '../src/sql/quote.js'
import { fenceKeySql, servingDdl } from '../src/tenants/serving.js'
import { createTestDatabase, dropRoles, type TestDatabase } from './helpers/db.js'
import { buildLegacyFixture, schemaFingerprint } from './helpers/legacy-fixture.js'

interface DB {
  item: { tenant_id?: string; id?: number; name: string }
  note: { tenant_id?: string; id?: number; body: string }
}

let db: TestDatabase
let tenancy: Tenancy
let runtime: pg.Pool
let runtimeUrl: string
const role = `rt_attack_${randomBytes(3).toString('hex')}`
const HOSTILE = 'we"ird, sch.ema'

beforeAll(async () => {
  db = await createTestDatabase('online_attacks')
  const password = randomBytes(8).toString('hex')
  const r = quoteIdent(role)
  const legacy = ['legacy_one', HOSTILE, 'legacy_four', role]
  await db.pool.query(`
    create role ${r} login password '${password}';
    create table public.tenants (id bigint primary key);
    insert into public.tenants values (1), (2), (3), (4), (5), (6);
    create table public.item (tenant_id bigint not null references tenants(id), id int not null,
      name text not null, primary key (tenant_id, id));
    create table public.note (tenant_id bigint not null references tenants(id), id int not null,
      body text not null, primary key (tenant_id, id));
    insert into public.item values (2, 1, 'shared two');
    insert into public.note values (2, 1, 'shared note of two');
    grant select, insert, update, delete on public.item, public.note to ${r};
    grant select on public.tenants to ${r};
  `)
  for (const s of legacy) {
    const q = quoteIdent(s)
    await db.pool.query(`create schema ${q};
      create table ${q}.item (id serial primary key, name text not null);
      insert into ${q}.item (name) values (${quoteLiteral(`item of ${s}`)});
      grant usage on schema ${q} to ${r};
      grant select, insert, update, delete on all tables in schema ${q} to ${r};
      grant usage on all sequences in schema ${q} to ${r};`)
  }
  // legacy_four has no note table; the schema named like the runtime role has one
  await db.pool.query(`create table ${quoteIdent(role)}.note (id serial primary key, body text not null);
    insert into ${quoteIdent(role)}.note (body) values ('secret note of six');
    grant select, insert, update, delete on ${quoteIdent(role)}.note to ${r};
    grant usage on all sequences in schema ${quoteIdent(role)} to ${r};`)
  await db.pool.query(`create table legacy_one.ev (id int primary key, body text not null) partition by range (id);
    create table legacy_one.ev_low partition of legacy_one.ev for values from (0) to (100);
    insert into legacy_one.ev values (1, 'event of one');
    grant select, insert, update, delete on legacy_one.ev, legacy_one.ev_low to ${r};`)
  for (const s of servingDdl('public', 'bigint')) await db.pool.query(s)
  for (const s of legacy) await guardLegacySchema(db.pool, s, role)
  await db.pool.query(
    `insert into rowtenancy_serving (tenant_id, schema_name, placement, fence_ms) values
       (1, 'legacy_one', 'schema', 300), (2, 'legacy_two', 'shared', 300),
       (3, $1, 'schema', 300), (4, 'legacy_four', 'schema', 300), (6, $2, 'schema', 300)`,
    [HOSTILE, role],
  )
  const u = new URL(db.url)
  u.username = role
  u.password = password
  runtimeUrl = u.toString()
  runtime = new pg.Pool({ connectionString: runtimeUrl, max: 1 })
  tenancy = createTenancy({
    pool: runtime,
    adminPool: db.pool,
    tables: ['item', 'note'],
    hybrid: { ttlMs: 0 },
  })
  for (const s of tenancy.rlsSql()) await db.pool.query(s)
}, 60_000)

afterAll(async () => {
  await runtime?.end()
  await db?.drop()
  await dropRoles([role])
})

const names = (rows: { name: string }[]) => rows.map((r) => r.name).sort()

describe('hybrid serving attacks', () => {
  it('a legacy schema missing a table: the name falls through to the shared table and sees / writes nothing', async () => {
    const k = tenancy.kysely<DB>()
    const read = await runWithTenant('4', () => k.selectFrom('note').select('body').execute())
    expect(read.map((r) => r.body)).not.toContain('shared note of two')
    expect(read.map((r) => r.body)).not.toContain('secret note of six')
    const write = await runWithTenant('4', () =>
      k.insertInto('note').values({ body: 'tenant four writes' }).execute(),
    ).catch((e: unknown) => e)
    // the shared table refuses it (no tenant bound), or it lands in tenant four's own schema
    const shared = await db.pool.query(
      "select count(*)::int as n from public.note where body = 'tenant four writes'",
    )
    expect(shared.rows[0].n).toBe(0)
    const six = await db.pool.query(
      `select count(*)::int as n from ${quoteIdent(role)}.note where body = 'tenant four writes'`,
    )
    expect(six.rows[0].n).toBe(0)
    expect(write).toBeInstanceOf(Error)
    // the tenant pool and a raw statement: the same
    const pooled = await runWithTenant('4', () =>
      tenantPoolOf(tenancy).query('select body from note'),
    ).catch(() => ({ rows: [] }))
    expect(pooled.rows).toEqual([])
  })

  it('a hostile legacy schema name (quotes, comma, dot) is one schema on the search_path', async () => {
    const k = tenancy.kysely<DB>()
    const rows = await runWithTenant('3', () => k.selectFrom('item').select('name').execute())
    expect(names(rows)).toEqual([`item of ${HOSTILE}`])
    const pooled = await runWithTenant('3', () =>
      tenantPoolOf(tenancy).query('select name from item'),
    )
    expect(names(pooled.rows)).toEqual([`item of ${HOSTILE}`])
  })

  it('one connection alternating schema, shared and schema tenants, with session state left by raw SQL', async () => {
    const k = tenancy.kysely<DB>()
    const pool = tenantPoolOf(tenancy)
    const want: Record<string, string[]> = {
      '1': ['item of legacy_one'],
      '2': ['shared two'],
      '3': [`item of ${HOSTILE}`],
      '5': [],
    }
    for (const t of ['1', '2', '3', '5', '1', '3', '2']) {
      // raw SQL leaves another schema on the session's search_path
      await runWithTenant(t, () =>
        pool.query(`select set_config('search_path', ${quoteLiteral(quoteIdent(HOSTILE))}, false)`),
      )
      expect(
        names(await runWithTenant(t, () => k.selectFrom('item').select('name').execute())),
      ).toEqual(want[t])
      await runWithTenant(t, () => pool.query(`set search_path = legacy_one, public`))
      expect(
        names((await runWithTenant(t, () => pool.query('select name from item'))).rows),
      ).toEqual(want[t])
    }
  })

  it('savepoints and nested transactions keep the legacy binding; a raw COMMIT inside leaves nothing reachable', async () => {
    await runWithTenant('1', () =>
      tenancy.transaction<DB, void>(async (trx) => {
        await sql`savepoint a`.execute(trx)
        await trx.insertInto('item').values({ name: 'rolled back' }).execute()
        await sql`rollback to savepoint a`.execute(trx)
        expect(names(await trx.selectFrom('item').select('name').execute())).toEqual([
          'item of legacy_one',
        ])
      }),
    )
    // an app that ends the transaction by raw SQL: the rest runs unbound, never on shared rows
    const after = await runWithTenant('1', () =>
      tenancy.transaction<DB, unknown>(async (trx) => {
        await trx.selectFrom('item').select('name').execute()
        await sql`commit`.execute(trx)
        return trx.selectFrom('item').select('name').execute()
      }),
    ).catch((e: unknown) => e)
    if (Array.isArray(after)) {
      expect(names(after)).not.toContain('shared two')
    }
  })

  it('a tenant with no serving row is served from the shared tables, filtered', async () => {
    const k = tenancy.kysely<DB>()
    expect(await runWithTenant('5', () => k.selectFrom('item').select('name').execute())).toEqual(
      [],
    )
    await runWithTenant('5', () => k.insertInto('item').values({ id: 1, name: 'five' }).execute())
    const { rows } = await db.pool.query('select tenant_id::int from public.item where name = $1', [
      'five',
    ])
    expect(rows).toEqual([{ tenant_id: 5 }])
  })

  it('no tenant with hybrid on: MissingTenantError, or no shared rows', async () => {
    const k = tenancy.kysely<DB>()
    await expect(k.selectFrom('item').select('name').execute()).rejects.toBeInstanceOf(
      MissingTenantError,
    )
    const pooled = await tenantPoolOf(tenancy)
      .query('select name from public.item')
      .catch((e: unknown) => e)
    if (pooled instanceof Error) return
    expect((pooled as pg.QueryResult).rows).toEqual([])
  })

  // Known, not fixed (reported): raw SQL with no tenant bound is not entered, so its
  // search_path is the role's default; a legacy schema on it ("$user" naming one here)
  // is read unfiltered. Qualified names of legacy schemas are readable with no tenant
  // anyway: the runtime role is granted every legacy schema while hybrid serving runs.
  it('raw SQL with no tenant is entered too: no legacy schema on its search_path, no rows', async () => {
    const pool = tenantPoolOf(tenancy)
    // the runtime role's default search_path ("$user", public) names tenant 6's legacy schema
    expect((await pool.query('select name from item')).rows).toEqual([])
    expect((await pool.query('select body from note')).rows).toEqual([])
    const path = (await pool.query('select current_setting($1) as p', ['search_path'])).rows[0]
    expect(path.p).not.toContain(role)
    const client = await pool.connect()
    try {
      await client.query('begin')
      expect((await client.query('select body from note')).rows).toEqual([])
      await client.query('commit')
    } finally {
      client.release()
    }
    const k = tenancy.kysely<DB>()
    const res = await sql<{ p: string }>`select current_setting('search_path') as p`
      .execute(k)
      .catch((e: unknown) => e)
    if (!(res instanceof MissingTenantError)) {
      expect((res as { rows: { p: string }[] }).rows[0]!.p).not.toContain(role)
    }
  })

  it('a legacy table named by its qualified name: only a transaction entered for its schema sees or writes it', async () => {
    const pool = tenantPoolOf(tenancy)
    const k = tenancy.kysely<DB>()
    const count = async (tenant: string | undefined, text: string) => {
      const run = () => pool.query(text).then((r: pg.QueryResult) => r.rows.length)
      return tenant === undefined ? run() : runWithTenant(tenant, run)
    }
    // tenant 1 (legacy_one) reads tenant 4's schema, a partition of its own, the runtime role's schema
    expect(await count('1', 'select * from "legacy_four".item')).toBe(0)
    expect(await count('1', `select * from ${quoteIdent(role)}.note`)).toBe(0)
    expect(await count('4', 'select * from legacy_one.ev')).toBe(0)
    expect(await count('4', 'select * from legacy_one.ev_low')).toBe(0)
    // a shared tenant, no tenant, the bare runtime role without rowtenancy: nothing
    expect(await count('2', 'select * from legacy_one.item')).toBe(0)
    expect(await count(undefined, 'select * from legacy_one.item')).toBe(0)
    expect(await count(undefined, 'select * from legacy_one.ev_low')).toBe(0)
    expect((await runtime.query('select * from legacy_one.item')).rows).toEqual([])
    // Kysely raw SQL of tenant 1
    const viaKysely = await runWithTenant('1', () =>
      sql`select * from "legacy_four".item`.execute(k),
    )
    expect(viaKysely.rows).toEqual([])
    // its own schema, qualified, still works
    expect(await count('1', 'select * from legacy_one.item')).toBe(1)
    expect(await count('1', 'select * from legacy_one.ev_low')).toBe(1)
    // writes: refused (insert) or touching nothing (update / delete)
    const insert = await runWithTenant('1', () =>
      pool.query(`insert into "legacy_four".item (name) values ('planted by one')`),
    ).catch((e: { code?: string }) => e)
    expect((insert as { code?: string }).code).toBe('42501')
    const noTenant = await pool
      .query(`insert into legacy_one.item (name) values ('planted by nobody')`)
      .catch((e: { code?: string }) => e)
    expect((noTenant as { code?: string }).code).toBe('42501')
    const upd = await runWithTenant('1', () =>
      pool.query(`update "legacy_four".item set name = 'changed by one'`),
    )
    expect(upd.rowCount).toBe(0)
    const del = await runWithTenant('2', () => pool.query('delete from legacy_one.ev_low'))
    expect(del.rowCount).toBe(0)
    // the owner (the old app's role when it owns its schemas) sees every row, unchanged
    const owner = await db.pool.query(
      'select (select array_agg(name) from "legacy_four".item) as four, (select count(*)::int from legacy_one.ev) as ev',
    )
    expect(owner.rows[0]).toEqual({ four: ['item of legacy_four'], ev: 1 })
  })

  it("a builder call of rowtenancy_enter_check never binds a transaction to another tenant's legacy schema", async () => {
    // rowtenancy_enter's SECURITY DEFINER half sets rowtenancy.legacy_schema for the tenant it is
    // given; the runtime role may call it (rowtenancy_enter runs as the caller). Tenant 1 is
    // served from legacy_one, so its builder queries go out unfiltered: calling the check for
    // tenant 4 first would read legacy_four's rows with no sql fragment at all.
    const k = tenancy.kysely<DB>()
    for (const name of ['rowtenancy_enter_check', 'public.rowtenancy_enter_check']) {
      const outcome = await runWithTenant('1', () =>
        k.transaction().execute(async (trx) => {
          await trx
            .selectNoFrom((eb) => eb.fn(name, [eb.val('4'), eb.val(null), eb.val('')]).as('x'))
            .execute()
          return trx
            .selectFrom('legacy_four.item' as 'item')
            .select('name')
            .execute()
        }),
      ).catch((e: Error) => e)
      expect(outcome).toBeInstanceOf(Error)
      expect((outcome as Error).message).toMatch(/rowtenancy_enter_check\(\) is refused/)
    }
  })
  it('a transaction open for a schema-placed tenant holds the cut-over fence until it ends', async () => {
    const k = tenancy.kysely<DB>()
    let release!: () => void
    const held = new Promise<void>((r) => {
      release = r
    })
    let entered!: () => void
    const inside = new Promise<void>((r) => {
      entered = r
    })
    const trx = runWithTenant('1', () =>
      tenancy.transaction<DB, void>(async (t) => {
        await t.selectFrom('item').select('name').execute()
        entered()
        await held
      }),
    )
    await inside
    const admin = await db.pool.connect()
    try {
      await admin.query('begin')
      await admin.query("set local lock_timeout = '200ms'")
      const err = await admin
        .query(`select pg_advisory_xact_lock(${fenceKeySql("'1'")})`)
        .catch((e: { code?: string }) => e)
      expect((err as { code?: string }).code).toBe('55P03')
      await admin.query('rollback')
    } finally {
      release()
      await trx
      admin.release()
    }
    expect(
      names(await runWithTenant('1', () => k.selectFrom('item').select('name').execute())),
    ).toEqual(['item of legacy_one'])
  })
  it("a runtime role that may create objects cannot run them with the owner's rights through rowtenancy_enter or the capture function", async () => {
    for (const s of captureDdl('public', 'bigint')) await db.pool.query(s)
    const r = quoteIdent(role)
    await db.pool.query(`create schema rt_evil authorization ${r}`)
    // a fresh session: no plan of rowtenancy_enter cached before the shadowing operator exists
    const client = new pg.Client({ connectionString: runtimeUrl })
    await client.connect()
    try {
      // an operator that shadows bigint = bigint and grants its caller superuser when it can
      await client.query(`create function rt_evil.eq(bigint, bigint) returns boolean language plpgsql as $f$
        begin
          if current_user <> ${quoteLiteral(role)} then execute 'alter role ${r} superuser'; end if;
          return $1 operator(pg_catalog.=) $2;
        end $f$`)
      await client.query(
        'create operator rt_evil.= (leftarg = bigint, rightarg = bigint, function = rt_evil.eq)',
      )
      await client.query('begin')
      await client.query('set local search_path = rt_evil, pg_catalog, public')
      await client.query("select public.rowtenancy_enter('1', null)").catch(() => {})
      await client.query('commit')
    } finally {
      await client.end()
    }
    const { rows } = await db.pool.query('select rolsuper from pg_roles where rolname = $1', [role])
    expect(rows[0].rolsuper).toBe(false)
    // the capture trigger's function runs as the owner too: its search_path is pinned
    const capture = await db.pool.query(
      "select proconfig from pg_proc where proname = 'rowtenancy_capture' and prosecdef",
    )
    expect(capture.rows[0].proconfig).toEqual(['search_path=pg_catalog, pg_temp'])
    await db.pool.query('drop schema rt_evil cascade')
  })
})

describe('capture triggers on a partitioned legacy table', () => {
  it('a write that names a partition is logged under the partitioned table; dropping removes every trigger', async () => {
    const pdb = await createTestDatabase('online_attacks_part')
    try {
      await pdb.pool.query(`create table public.tenants (id text primary key);
        create schema "le%s gacy";
        create table "le%s gacy".item (id int primary key, name text) partition by range (id);
        create table "le%s gacy".item_low partition of "le%s gacy".item for values from (0) to (100);
        create table "le%s gacy".item_high partition of "le%s gacy".item
          for values from (100) to (1000) partition by range (id);
        create table "le%s gacy".item_high_a partition of "le%s gacy".item_high
          for values from (100) to (500);`)
      for (const s of servingDdl('public', 'text')) await pdb.pool.query(s)
      for (const s of captureDdl('public', 'text')) await pdb.pool.query(s)
      await pdb.pool.query(
        `insert into rowtenancy_serving (tenant_id, schema_name, placement) values ('t%s''1', 'le%s gacy', 'schema')`,
      )
      const ctx = { sourceSchema: 'le%s gacy', tenantId: "t%s'1" } as never
      const table = { name: 'item', source: { partitioned: true } } as never
      for (const s of installTriggerSql('public', ctx, table, ['id'])) await pdb.pool.query(s)
      await pdb.pool.query(`insert into "le%s gacy".item values (1, 'parent');
        insert into "le%s gacy".item_low values (2, 'partition');
        insert into "le%s gacy".item_high_a values (200, 'sub-partition');
        update "le%s gacy".item_low set name = 'x' where id = 2;
        delete from "le%s gacy".item_high where id = 200;`)
      const { rows } = await pdb.pool.query(
        'select tenant_id, table_name, key::text as key from rowtenancy_changelog order by id',
      )
      expect(rows.every((r) => r.table_name === 'item' && r.tenant_id === "t%s'1")).toBe(true)
      expect(rows.map((r) => r.key)).toEqual(['[1]', '[2]', '[200]', '[2]', '[2]', '[200]'])
      const truncate = await pdb.pool
        .query(`truncate "le%s gacy".item_low`)
        .catch((e: { code?: string }) => e)
      expect((truncate as { code?: string }).code).toBe('55000')
      for (const s of dropTriggerSql(ctx, table)) await pdb.pool.query(s)
      const left = await pdb.pool.query(
        "select count(*)::int as n from pg_trigger where tgname like 'rowtenancy_capture%'",
      )
      expect(left.rows[0].n).toBe(0)
    } finally {
      await pdb.drop()
    }
  })
})

describe('--online --prepare refuses a runtime role that could reach legacy schemas without rowtenancy_enter', () => {
  let fx: TestDatabase
  const app = `rt_prep_${randomBytes(3).toString('hex')}`
  const prepare = () =>
    migrateOnline({ db: fx.pool, all: true, prepareOnly: true, grantTo: app }).catch(
      (e: unknown) => e,
    )
  const nothingChanged = async () => {
    const { rows } = await fx.pool.query(
      `select to_regclass('public.rowtenancy_serving') as serving,
        (select count(*)::int from pg_policy where polname = $1) as policies,
        (select count(*)::int from pg_class c join pg_namespace n on n.oid = c.relnamespace
          where n.nspname in ('acme', 'globex') and c.relrowsecurity) as rls`,
      [LEGACY_POLICY],
    )
    expect(rows[0]).toEqual({ serving: null, policies: 0, rls: 0 })
  }

  beforeAll(async () => {
    fx = await createTestDatabase('online_prepare')
    await buildLegacyFixture(fx.pool, { rows: 3, drift: false, hostile: false })
    await fx.pool.query(`create role ${quoteIdent(app)} login`)
  }, 60_000)

  afterAll(async () => {
    await fx?.drop()
    await dropRoles([app])
  })

  it('a legacy schema named like the --grant-to role', async () => {
    await fx.pool.query(`alter schema globex rename to ${quoteIdent(app)}`)
    await fx.pool.query('update customers_client set schema_name = $1 where id = 2', [app])
    try {
      const err = await prepare()
      expect(err).toBeInstanceOf(Error)
      expect((err as Error).message).toMatch(/named like the --grant-to role/)
    } finally {
      await fx.pool.query(`alter schema ${quoteIdent(app)} rename to globex`)
      await fx.pool.query(`update customers_client set schema_name = 'globex' where id = 2`)
    }
    await nothingChanged()
  })

  it('a role or database default search_path naming a legacy schema', async () => {
    await fx.pool.query(`alter role ${quoteIdent(app)} set search_path = public, "acme"`)
    try {
      expect(((await prepare()) as Error).message).toMatch(
        /search_path of role .* legacy schema "acme"/,
      )
    } finally {
      await fx.pool.query(`alter role ${quoteIdent(app)} reset search_path`)
    }
    await fx.pool.query(
      `do $$ begin execute format('alter database %I set search_path = "$user", globex, public', current_database()); end $$`,
    )
    try {
      expect(((await prepare()) as Error).message).toMatch(
        /search_path of the database .* "globex"/,
      )
    } finally {
      await fx.pool.query(
        `do $$ begin execute format('alter database %I reset search_path', current_database()); end $$`,
      )
    }
    await nothingChanged()
  })

  it('a legacy table owned by the runtime role, or with row level security of its own', async () => {
    await fx.pool.query(`alter table acme.author owner to ${quoteIdent(app)}`)
    try {
      expect(((await prepare()) as Error).message).toMatch(/owns legacy table acme.author/)
    } finally {
      await fx.pool.query('alter table acme.author owner to current_user')
    }
    await fx.pool.query('alter table globex.book enable row level security')
    try {
      expect(((await prepare()) as Error).message).toMatch(
        /globex.book already has row level security/,
      )
    } finally {
      await fx.pool.query('alter table globex.book disable row level security')
    }
    await nothingChanged()
  })

  it('then prepares: a policy on every legacy table and partition, no source row changed, rerun a no-op', async () => {
    const before = await schemaFingerprint(fx.pool, ['acme', 'globex'])
    const report = await migrateOnline({
      db: fx.pool,
      all: true,
      prepareOnly: true,
      grantTo: app,
    })
    expect(report.ok).toBe(true)
    await migrateOnline({ db: fx.pool, all: true, prepareOnly: true, grantTo: app })
    const { rows } = await fx.pool.query(
      `select count(*)::int as tables, count(*) filter (where c.relrowsecurity and not c.relforcerowsecurity
          and exists (select 1 from pg_policy p where p.polrelid = c.oid and p.polname = $1))::int as guarded
         from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname in ('acme', 'globex') and c.relkind in ('r', 'p')`,
      [LEGACY_POLICY],
    )
    expect(rows[0].tables).toBeGreaterThan(8)
    expect(rows[0].guarded).toBe(rows[0].tables)
    expect(await schemaFingerprint(fx.pool, ['acme', 'globex'])).toEqual(before)
    // the runtime role, bare: granted, yet no rows; the owner: every row
    const c = await fx.pool.connect()
    try {
      await c.query('begin')
      await c.query(`set local role ${quoteIdent(app)}`)
      expect((await c.query('select * from acme.author')).rows).toEqual([])
      expect((await c.query('select * from globex.event_2024')).rows).toEqual([])
      await c.query('rollback')
    } finally {
      c.release()
    }
    const owner = await fx.pool.query('select count(*)::int as n from acme.author')
    expect(owner.rows[0].n).toBeGreaterThan(0)
  })
})
