import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { adjustSequences, followTenantSequences } from '../src/migrate/sequences.js'
import { createTestDatabase, dropRoles, type TestDatabase } from './helpers/db.js'

/**
 * The shared sequences' moves after a copy: never backwards (also from a sequence
 * restarted but not yet called), and no stop on a sequence of the target schema
 * that belongs to something else and that the migration role may not read.
 */
let db: TestDatabase
const mig = `rt_seq_mig_${randomBytes(4).toString('hex')}`
const other = `rt_seq_other_${randomBytes(4).toString('hex')}`

beforeAll(async () => {
  db = await createTestDatabase('sequence_moves')
  await db.pool.query(`
    create role "${mig}"; create role "${other}";
    grant create, usage on schema public to "${mig}", "${other}";
    create schema tenant_1;
    create sequence tenant_1.bill_no; select setval('tenant_1.bill_no', 42);
    create table tenant_1.invoice (id int primary key, no text default 'INV-' || nextval('tenant_1.bill_no'));
    insert into tenant_1.invoice (id) values (7);
    create sequence tenant_1.jobs_id_seq; select setval('tenant_1.jobs_id_seq', 5000);
    grant usage on schema tenant_1 to "${mig}";
    grant select on all tables in schema tenant_1 to "${mig}";
    grant select, usage on all sequences in schema tenant_1 to "${mig}";
    set role "${mig}";
    create sequence public.bill_no;
    create table public.invoice (id int primary key, no text default 'INV-' || nextval('public.bill_no'));
    insert into public.invoice (id, no) values (7, 'INV-1');
    reset role;
    set role "${other}";
    create table public.jobs (id serial primary key);
    reset role;`)
})
afterAll(async () => {
  await db.drop()
  await dropRoles([mig, other])
})

it('a sequence restarted past the tenants is not moved back; an unrelated sequence the role may not read stops nothing', async () => {
  const client = await db.pool.connect()
  try {
    await client.query(`alter sequence public.bill_no restart with 1000`)
    await client.query(`set role "${mig}"`)
    const moved = await followTenantSequences(client, 'public', ['invoice'], ['tenant_1'])
    expect(moved.map((m) => m.sequence)).not.toContain('public.jobs_id_seq')
    await adjustSequences(client, 'public', ['invoice'])
    const { rows } = await client.query(`select nextval('public.bill_no')::int as next`)
    expect(rows[0].next).toBe(1000)
  } finally {
    await client.query('reset role').catch(() => {})
    client.release()
  }
})

it('a sequence behind the tenants moves past the furthest of them', async () => {
  const client = await db.pool.connect()
  try {
    await client.query(`alter sequence public.bill_no restart with 3`)
    await client.query(`set role "${mig}"`)
    await followTenantSequences(client, 'public', ['invoice'], ['tenant_1'])
    const { rows } = await client.query(
      `select nextval('public.bill_no')::int as next, (select last_value::int from tenant_1.bill_no) as tenant`,
    )
    expect(rows[0].next).toBe(rows[0].tenant + 1)
  } finally {
    await client.query('reset role').catch(() => {})
    client.release()
  }
})
