import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ensureLedger } from '../src/migrate/ledger.js'
import { adjustSequences } from '../src/migrate/sequences.js'
import { inTransaction } from '../src/sql/queryable.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'

// The edges of the steps around the copy: a transaction helper on a connection the caller
// already has in a transaction, the ledger made by two runs at once, sequences a role may use
// but not read, and sequences at the end of their range.

let db: TestDatabase
const reader = `rt_seq_reader_${randomBytes(4).toString('hex')}`

beforeAll(async () => {
  db = await createTestDatabase('migrate_setup_edges')
  await db.pool.query(`create table public.seen (n int)`)
})
afterAll(async () => {
  await db?.pool.query(`drop owned by "${reader}"; drop role if exists "${reader}"`).catch(() => {})
  await db?.drop()
})

describe('inTransaction', () => {
  it("on a connection in the caller's transaction: a savepoint, and the caller's rollback undoes all", async () => {
    const c = await db.pool.connect()
    try {
      await c.query('begin')
      await c.query('insert into public.seen values (1)')
      await inTransaction(c, (tx) => tx.query('insert into public.seen values (2)'))
      await expect(
        inTransaction(c, async (tx) => {
          await tx.query('insert into public.seen values (3)')
          throw new Error('undo 3 only')
        }),
      ).rejects.toThrow('undo 3 only')
      expect((await c.query('select n from public.seen order by n')).rows).toEqual([
        { n: 1 },
        { n: 2 },
      ])
      await c.query('rollback')
      expect((await c.query('select count(*)::int as n from public.seen')).rows[0].n).toBe(0)
      // Outside a transaction: its own, committed.
      await inTransaction(c, (tx) => tx.query('insert into public.seen values (4)'))
      await c.query('rollback') // nothing to roll back: a warning only
      expect((await c.query('select n from public.seen')).rows).toEqual([{ n: 4 }])
    } finally {
      c.release()
    }
  })
})

describe('ensureLedger', () => {
  it('two runs making the ledger at once both go on', async () => {
    await db.pool.query('create schema ledger_race')
    const runs = Array.from({ length: 4 }, () => ensureLedger(db.pool, 'ledger_race'))
    await expect(Promise.all(runs)).resolves.toBeDefined()
  })
})

describe('adjustSequences', () => {
  it('a sequence the role may use but not read, with nothing to move: no error', async () => {
    await db.pool.query(`
      create schema seq_reader;
      create table seq_reader.a (id serial primary key);
      insert into seq_reader.a default values;
      create role "${reader}";
      grant usage on schema seq_reader to "${reader}";
      grant select on seq_reader.a to "${reader}";
      grant usage on sequence seq_reader.a_id_seq to "${reader}";`)
    const c = await db.pool.connect()
    try {
      await c.query(`set role "${reader}"`)
      expect(await adjustSequences(c, 'seq_reader', ['a'])).toEqual([])
    } finally {
      await c.query('reset role')
      c.release()
    }
  })

  it('sequences at the end of their range, ascending and descending: left alone', async () => {
    await db.pool.query(`
      create schema seq_limit;
      create sequence seq_limit.up maxvalue 9223372036854775807;
      select setval('seq_limit.up', 9223372036854775807);
      create table seq_limit.u (id bigint primary key default nextval('seq_limit.up'));
      insert into seq_limit.u values (9223372036854775807);
      create sequence seq_limit.down increment -1 minvalue -9223372036854775808 maxvalue -1 start -1;
      select setval('seq_limit.down', -9223372036854775808);
      create table seq_limit.d (id bigint primary key default nextval('seq_limit.down'));
      insert into seq_limit.d values (-9223372036854775808);`)
    expect(await adjustSequences(db.pool, 'seq_limit', ['u', 'd'])).toEqual([])
  })
})
