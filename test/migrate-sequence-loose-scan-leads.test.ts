import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { moveSequencesOf, readSequenceColumns } from '../src/migrate/sequences.js'
import { createTestDatabase, dropRoles, type TestDatabase } from './helpers/db.js'

/**
 * The loose index scan of the sequence move, for every shape of the lead column of a
 * `(lead, id)` index: the sequence must land past `max(id)` of the whole table. Each case
 * builds a table whose largest id sits in a row the loose scan could miss, checks whether the
 * loose path is taken (readSequenceColumns found the index), moves the sequence, and compares
 * nextval with a plain `max(id)`. A composite lead is not scanned loosely: a row value with a
 * null field is neither null nor not null.
 */
const mover = `rt_mover_${randomBytes(4).toString('hex')}`
let db: TestDatabase

beforeAll(async () => {
  db = await createTestDatabase('loose_scan_leads')
  await db.pool.query(`
    create extension if not exists citext;
    create type public.pair as (a int, b int);
    create type public.mood as enum ('sad', 'ok', 'happy');
    create domain public.slug as text check (value <> '');
    create collation public.ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
  `)
})
afterAll(async () => {
  await db.drop()
  await dropRoles([mover])
})

/** Moves the table's sequence by the loose scan; returns [nextval, max(id) + 1, index used]. */
async function moveAndCompare(
  table: string,
  schema = 'public',
): Promise<[number, number, boolean]> {
  const cols = await readSequenceColumns(db.pool, schema, [table])
  expect(cols).toHaveLength(1)
  await moveSequencesOf(db.pool, schema, cols, { looseScan: () => true })
  const { rows } = await db.pool.query(
    `select nextval($1::regclass)::int as n,
            (select max(id) from ${quoteQ(schema, table)})::int + 1 as want`,
    [cols[0]!.seq],
  )
  return [rows[0].n, rows[0].want, !!cols[0]!.index]
}

const quoteQ = (s: string, t: string) => `"${s.replace(/"/g, '""')}"."${t.replace(/"/g, '""')}"`

describe('a composite lead column is scanned, not loosely (a row value with a null field is neither IS NULL nor IS NOT NULL)', () => {
  it('NOT NULL composite lead: a row(2, null) tenant in the middle stops the recursion', async () => {
    await db.pool.query(`
      create table public.comp_nn (tenant public.pair not null, id serial);
      create index comp_nn_lead on public.comp_nn (tenant, id);
      insert into public.comp_nn values (row(1, 1), 1), (row(2, null), 5000), (row(3, 3), 7);`)
    const [next, want, indexed] = await moveAndCompare('comp_nn')
    expect(indexed).toBe(false)
    expect(next).toBe(want) // 5001
  })

  it('NOT NULL composite lead: the smallest tenant has a null field (the anchor skips it)', async () => {
    await db.pool.query(`
      create table public.comp_first (tenant public.pair not null, id serial);
      create index comp_first_lead on public.comp_first (tenant, id);
      insert into public.comp_first values (row(0, null), 9000), (row(1, 1), 1);`)
    const [next, want, indexed] = await moveAndCompare('comp_first')
    expect(indexed).toBe(false)
    expect(next).toBe(want) // 9001
  })

  it('nullable composite lead: row(null, null) is covered by the IS NULL branch, row(1, null) is not', async () => {
    await db.pool.query(`
      create table public.comp_null (tenant public.pair, id serial);
      create index comp_null_lead on public.comp_null (tenant, id);
      insert into public.comp_null values (row(null, null), 3), (null, 4), (row(5, null), 8000), (row(1, 1), 2);`)
    const [next, want, indexed] = await moveAndCompare('comp_null')
    expect(indexed).toBe(false)
    expect(next).toBe(want) // 8001
  })
})

describe('lead types that held (each with its largest id in a tenant the scan must not skip)', () => {
  const cases: { name: string; ddl: string }[] = [
    {
      name: 'enum',
      ddl: `create table public.t_enum (tenant public.mood not null, id serial, primary key (tenant, id));
            insert into public.t_enum values ('happy', 1), ('sad', 2), ('ok', 900);`,
    },
    {
      name: 'uuid',
      ddl: `create table public.t_uuid (tenant uuid not null, id serial, primary key (tenant, id));
            insert into public.t_uuid select gen_random_uuid(), g from generate_series(1, 50) g;
            insert into public.t_uuid values ('ffffffff-ffff-ffff-ffff-ffffffffffff', 901), ('00000000-0000-0000-0000-000000000000', 3);`,
    },
    {
      name: 'citext',
      ddl: `create table public.t_citext (tenant citext not null, id serial, primary key (tenant, id));
            insert into public.t_citext values ('Acme', 1), ('acme', 902), ('ACME', 2), ('b', 3);`,
    },
    {
      name: 'nondeterministic collation',
      ddl: `create table public.t_ci (tenant text collate public.ci not null, id serial);
            create index t_ci_lead on public.t_ci (tenant, id);
            insert into public.t_ci values ('a', 1), ('A', 903), ('b', 2), ('B', 4);`,
    },
    {
      name: 'numeric with equal values of other scales',
      ddl: `create table public.t_num (tenant numeric not null, id serial, primary key (tenant, id));
            insert into public.t_num values (1.0, 1), (1.00, 904), (1, 2), (2.5, 3), ('NaN', 5);`,
    },
    {
      name: 'numeric(10,2) (typmod through the recursive CTE)',
      ddl: `create table public.t_num2 (tenant numeric(10,2) not null, id serial, primary key (tenant, id));
            insert into public.t_num2 values (1, 1), (2, 905);`,
    },
    {
      name: 'float8 with NaN, -0 and +0, infinities',
      ddl: `create table public.t_float (tenant float8 not null, id serial, primary key (tenant, id));
            insert into public.t_float values ('NaN', 906), ('-0', 1), ('0', 2), ('Infinity', 3), ('-Infinity', 4);`,
    },
    {
      name: 'domain over text',
      ddl: `create table public.t_dom (tenant public.slug not null, id serial, primary key (tenant, id));
            insert into public.t_dom values ('a', 1), ('m', 907), ('z', 2);`,
    },
    {
      name: 'varchar(10) and char(3)',
      ddl: `create table public.t_vc (tenant varchar(10) not null, id serial, primary key (tenant, id));
            insert into public.t_vc values ('a', 1), ('b', 908);
            create table public.t_bp (tenant char(3) not null, id serial, primary key (tenant, id));
            insert into public.t_bp values ('a', 1), ('a  ', 2), ('b', 909);`,
    },
    {
      name: 'int[] with null elements',
      ddl: `create table public.t_arr (tenant int[] not null, id serial, primary key (tenant, id));
            insert into public.t_arr values (array[1], 1), (array[null]::int[], 910), (array[2, null], 3), ('{}', 4);`,
    },
    {
      name: 'nullable text lead, DESC NULLS FIRST index',
      ddl: `create table public.t_desc (tenant text, id serial);
            create index t_desc_lead on public.t_desc (tenant desc nulls first, id);
            insert into public.t_desc values ('a', 1), (null, 911), ('b', 2);`,
    },
    {
      name: 'INCLUDE columns and a unique index',
      ddl: `create table public.t_incl (tenant int not null, id serial, x int);
            create unique index t_incl_lead on public.t_incl (tenant, id) include (x);
            insert into public.t_incl values (1, 1, 0), (2, 912, 0);`,
    },
    {
      name: 'partitioned table with a partitioned index, a default partition',
      ddl: `create table public.t_part (tenant int not null, id serial, primary key (tenant, id)) partition by list (tenant);
            create table public.t_part_1 partition of public.t_part for values in (1);
            create table public.t_part_d partition of public.t_part default;
            insert into public.t_part values (1, 1), (7, 913), (9, 2);`,
    },
  ]
  for (const c of cases) {
    it(c.name, async () => {
      await db.pool.query(c.ddl)
      const table = /create table public\.(\w+)/.exec(c.ddl)![1]!
      const [next, want, indexed] = await moveAndCompare(table)
      expect(indexed).toBe(true)
      expect(next).toBe(want)
    })
  }
  it('char(3) second table', async () => {
    const [next, want] = await moveAndCompare('t_bp')
    expect(next).toBe(want)
  })
})

describe('hostile identifiers', () => {
  it('a schema with a quote and a dot, a table named rt_k, a lead named v and an id column named m', async () => {
    await db.pool.query(`
      create schema "we""ird.s";
      create table "we""ird.s".rt_k (v text, m serial, rt_s int, primary key (v, m));
      insert into "we""ird.s".rt_k (v, m) values ('x', 1), ('y', 914);
      create table "we""ird.s".rt_s (rt_k int not null, id serial, primary key (rt_k, id));
      insert into "we""ird.s".rt_s values (1, 1), (2, 915);`)
    for (const [table, col] of [
      ['rt_k', 'm'],
      ['rt_s', 'id'],
    ] as const) {
      const cols = await readSequenceColumns(db.pool, 'we"ird.s', [table])
      expect(cols[0]?.index).toBeTruthy()
      await moveSequencesOf(db.pool, 'we"ird.s', cols, { looseScan: () => true })
      const { rows } = await db.pool.query(
        `select nextval($1::regclass)::int as n, (select max(${col}) from "we""ird.s".${table})::int + 1 as want`,
        [cols[0]!.seq],
      )
      expect(rows[0].n).toBe(rows[0].want)
    }
  })
})

describe('other paths', () => {
  it('PostgreSQL 18: a NOT NULL NOT VALID lead (attnotnull is true, old rows may still be null)', async (ctx) => {
    const { rows } = await db.pool.query(`select current_setting('server_version_num')::int as v`)
    if (rows[0].v < 180000) ctx.skip()
    await db.pool.query(`
      create table public.t_nv (tenant int, id serial);
      create index t_nv_lead on public.t_nv (tenant, id);
      insert into public.t_nv values (1, 1), (null, 7000), (2, 2);
      alter table public.t_nv add constraint t_nv_tenant_nn not null tenant not valid;`)
    const [next, want, indexed] = await moveAndCompare('t_nv')
    expect(indexed).toBe(true)
    expect(next).toBe(want) // 7001
  })

  it('a role with USAGE and UPDATE but not SELECT on a sequence that must move: a clear error, the sequence untouched', async () => {
    await db.pool.query(`
      create table public.t_priv (tenant int not null, id serial, primary key (tenant, id));
      insert into public.t_priv values (1, 1), (2, 920), (3, 2);
      create role "${mover}";
      grant usage on schema public to "${mover}";
      grant select on public.t_priv to "${mover}";
      grant usage, update on sequence public.t_priv_id_seq to "${mover}";`)
    const c = await db.pool.connect()
    try {
      await c.query(`set role "${mover}"`)
      const cols = await readSequenceColumns(c, 'public', ['t_priv'])
      expect(cols[0]?.readable).toBe(false)
      await expect(moveSequencesOf(c, 'public', cols, { looseScan: () => true })).rejects.toThrow(
        /public\.t_priv_id_seq must move past the copied ids, but this role may not read them\. Grant it SELECT \(grant select on sequence public\.t_priv_id_seq/,
      )
    } finally {
      await c.query('reset role').catch(() => {})
      c.release()
    }
    const { rows } = await db.pool.query(`select nextval('public.t_priv_id_seq')::int as n`)
    expect(rows[0].n).toBe(1)
  })
})
