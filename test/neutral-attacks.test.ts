/**
 * Red-team cases for the session-neutral statement judge
 * (src/db/neutral-statement.ts).
 *
 * Held: every route to a function call tried (casts, type input functions,
 * `alias.fn` on keyword FROM items, unicode escapes, OPERATOR(), numeric
 * literals, `$` in names, subscripts, row fields, locking clauses).
 * Outside the judge: a neutral INSERT whose column default calls nextval sets
 * the session's lastval()/currval(), which `reset all` does not clear. The
 * judge passes it; the pools' `discard sequences` on the next checkout is what
 * keeps it from the next tenant (test/session-sequences.test.ts).
 */
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { isSessionNeutral } from '../src/db/neutral-statement.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'

let db: TestDatabase

describe('session-neutral judge under attack', () => {
  beforeAll(async () => {
    db = await createTestDatabase('neutral_attacks')
    await db.pool.query('create table acc (id serial primary key, name text)')
  }, 60_000)
  afterAll(async () => {
    await db?.drop()
  })

  it('refuses every function-call route tried', () => {
    for (const text of [
      'select 1 OPERATOR(pg_catalog.+) 1',
      'select "set_config"($1, $2, false)',
      "select U&\"!0073et_config\" UESCAPE '!' ('a', 'b', false)",
      'select (acc).pg_advisory_lock from acc',
      'select $1.ts_stat',
      'select x[1].f from acc',
      'select row(1).f1',
      'select count(*) filter (where true) from acc',
      'select * from acc tablesample system (1)',
      'select cast($1 as int)',
      'select pg_catalog.lastval()',
      'select * into t from acc',
      'select 1; select 2',
      'commit and chain',
      'table acc',
      'select $$x$$',
      'select current_user',
    ]) {
      expect(isSessionNeutral(text), text).toBe(false)
    }
  })

  it('what it lets through calls no session-changing function (checked on the server)', async () => {
    // alias.fn on a scalar FROM item (current_date): the only volatile candidate is pg_sleep_until
    const { rows } = await db.pool.query(
      `select count(*)::int as n from pg_proc p
        where p.pronargs >= 1 and p.provolatile = 'v'
          and p.proargtypes[0] in ('date'::regtype, 'timestamp'::regtype, 'timestamptz'::regtype,
                                   'time'::regtype, 'timetz'::regtype)
          and (p.pronargs = 1 or p.pronargdefaults >= p.pronargs - 1)
          and p.proname <> 'pg_sleep_until'`,
    )
    expect(rows[0].n).toBe(0)
    for (const text of [
      'select d.pg_sleep_until from current_date d',
      "select 'acc'::regclass",
      'select t.to_json from acc t',
      'select * from acc for update',
    ]) {
      expect(isSessionNeutral(text), text).toBe(true)
    }
  })

  // The judge is not what clears sequence state: see session-sequences.test.ts for the pools.
  it('a neutral INSERT with a serial default leaves lastval() behind `reset all` (the judge passes it)', async () => {
    const text = "insert into acc (name) values ('x')"
    expect(isSessionNeutral(text)).toBe(true)
    const client = new pg.Client({ connectionString: db.url })
    await client.connect()
    try {
      await client.query(text)
      await client.query('reset all')
      const after = await client.query('select lastval() as v')
      expect(after.rows[0].v).toBe('1')
    } finally {
      await client.end()
    }
  })
})
