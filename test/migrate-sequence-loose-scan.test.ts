import { afterAll, beforeAll, expect, it } from 'vitest'
import { adjustSequences, moveSequencesOf, readSequenceColumns } from '../src/migrate/sequences.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'

/**
 * The furthest id of a shared table found through its `(tenant, id)` index (one descent
 * per tenant) must be the furthest id of the whole table, whatever the shape: the largest
 * id in a tenant in the middle, tenant ids as text under a collation, a nullable lead
 * column whose null rows hold the largest id, a descending sequence, and an index that is
 * gone by the time of the move or that orders differently (then the table is scanned).
 * Each case is checked against `max()` / `min()` over the table.
 */
let db: TestDatabase

beforeAll(async () => {
  db = await createTestDatabase('sequence_loose_scan')
  await db.pool.query(`
    create table public.book (tenant_id bigint not null, id serial, primary key (tenant_id, id));
    insert into public.book (tenant_id, id) select t, g from generate_series(1, 30) t, generate_series(1, 50) g;
    insert into public.book (tenant_id, id) values (17, 90001);

    create table public.note (tenant_id text collate "C" not null, id bigserial, primary key (tenant_id, id));
    insert into public.note values ('a', 5), ('B', 700), ('b', 6), ('ü', 9), ('Z', 2);

    create table public.tag (owner text, id serial);
    create index tag_owner_id on public.tag (owner, id);
    insert into public.tag values ('x', 3), ('y', 4), (null, 800), (null, 2);

    create sequence public.down_seq increment by -1 minvalue -1000000 maxvalue -1 start with -1;
    create table public.debt (tenant_id int not null, id int not null default nextval('public.down_seq'),
                              primary key (tenant_id, id));
    insert into public.debt values (1, -5), (2, -40), (3, -7);

    create table public.gone (tenant_id int not null, id serial);
    create index gone_tenant_id on public.gone (tenant_id, id);
    insert into public.gone values (1, 10), (2, 20), (3, 555);

    create table public.pattern (code text not null, id serial);
    create index pattern_code_id on public.pattern (code text_pattern_ops, id);
    insert into public.pattern values ('a', 1), ('b', 66);`)
})
afterAll(async () => {
  await db.drop()
})

/** What the sequence gives next after the move. */
async function nextOf(seq: string): Promise<number> {
  const { rows } = await db.pool.query(`select nextval($1::regclass)::int as n`, [seq])
  return rows[0].n
}

it('finds the furthest id through the (tenant, id) key, also in a tenant in the middle', async () => {
  const [col] = await readSequenceColumns(db.pool, 'public', ['book'])
  expect(col?.lead).toBe('tenant_id')
  await adjustSequences(db.pool, 'public', ['book'])
  expect(await nextOf('public.book_id_seq')).toBe(90002)
})

it('text tenant ids under their own collation, and a nullable lead whose null rows hold the furthest id', async () => {
  const cols = await readSequenceColumns(db.pool, 'public', ['note', 'tag'])
  expect(cols.map((c) => [c.table, c.lead])).toEqual([
    ['note', 'tenant_id'],
    ['tag', 'owner'],
  ])
  await moveSequencesOf(db.pool, 'public', cols)
  expect(await nextOf('public.note_id_seq')).toBe(701)
  expect(await nextOf('public.tag_id_seq')).toBe(801)
})

it('a descending sequence goes below the smallest id', async () => {
  await adjustSequences(db.pool, 'public', ['debt'])
  expect(await nextOf('public.down_seq')).toBe(-41)
})

it('an index dropped between the read and the move: the table is scanned instead', async () => {
  const cols = await readSequenceColumns(db.pool, 'public', ['gone'])
  expect(cols[0]?.index).toBeTruthy()
  await db.pool.query('drop index public.gone_tenant_id')
  await moveSequencesOf(db.pool, 'public', cols)
  expect(await nextOf('public.gone_id_seq')).toBe(556)
})

it('an index that orders its lead otherwise (text_pattern_ops) is not used', async () => {
  const cols = await readSequenceColumns(db.pool, 'public', ['pattern'])
  expect(cols[0]?.index).toBeNull()
  await moveSequencesOf(db.pool, 'public', cols)
  expect(await nextOf('public.pattern_id_seq')).toBe(67)
})

it('the loose scan reads the index, not the table; without it the table is scanned', async () => {
  await db.pool.query('insert into public.book (tenant_id, id) values (29, 95000)')
  const cols = await readSequenceColumns(db.pool, 'public', ['book'])
  const planOf = async (looseScan: boolean) => {
    const sent: { text: string; values?: unknown[] }[] = []
    const recording = {
      query: (text: string, values?: unknown[]) => {
        sent.push({ text, values })
        return db.pool.query(text, values)
      },
    }
    await moveSequencesOf(recording, 'public', cols, { looseScan: () => looseScan })
    const { rows } = await db.pool.query(`explain (costs off) ${sent[0]!.text}`, sent[0]!.values)
    return rows.map((r) => r['QUERY PLAN'] as string).join('\n')
  }
  const loose = await planOf(true)
  expect(await nextOf('public.book_id_seq')).toBe(95001)
  expect(loose).toMatch(/Index Only Scan Backward using book_pkey/)
  expect(loose).toMatch(/Seq Scan on book/) // the fallback branch, never run while the index is there
  await db.pool.query('insert into public.book (tenant_id, id) values (3, 96000)')
  const scan = await planOf(false)
  expect(scan).not.toMatch(/Index Only Scan Backward using book_pkey/)
  expect(await nextOf('public.book_id_seq')).toBe(96001)
})

it('the read looks up the index only for the tables the loose scan is for; the others move by a scan', async () => {
  const all = await readSequenceColumns(db.pool, 'public', ['book', 'note'])
  const some = await readSequenceColumns(db.pool, 'public', ['book', 'note'], {
    looseScan: (table) => table === 'note',
  })
  const none = await readSequenceColumns(db.pool, 'public', ['book', 'note'], {
    looseScan: () => false,
  })
  const leads = (cols: typeof all) => cols.map((c) => [c.table, c.lead ?? null])
  expect(leads(all)).toEqual([
    ['book', 'tenant_id'],
    ['note', 'tenant_id'],
  ])
  expect(leads(some)).toEqual([
    ['book', null],
    ['note', 'tenant_id'],
  ])
  expect(leads(none)).toEqual([
    ['book', null],
    ['note', null],
  ])
  // Everything but the index is the same.
  const rest = (cols: typeof all) => cols.map(({ index, lead, ...r }) => r)
  expect(rest(some)).toEqual(rest(all))
  expect(rest(none)).toEqual(rest(all))
  await db.pool.query(
    "insert into public.book (tenant_id, id) values (4, 97000); insert into public.note values ('q', 9000)",
  )
  await moveSequencesOf(db.pool, 'public', none)
  expect(await nextOf('public.book_id_seq')).toBe(97001)
  expect(await nextOf('public.note_id_seq')).toBe(9001)
})
