import { afterAll, beforeAll, expect, it } from 'vitest'
import { applyTenantSchema } from '../src/entries/schema.js'
import { installTenantTables } from '../src/tenants/index.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'

/**
 * The one dependency order of domains, composite and range types (render.ts typesInOrder,
 * read-schema.ts sortDomains / sortCompositeTypes). The types are created so that
 * their oids run against the dependency order (a composite gets its domain attribute by ALTER
 * TYPE after the domain exists), which defeats any order that is only catalog order.
 */
let db: TestDatabase

beforeAll(async () => {
  db = await createTestDatabase('type_order')
  await installTenantTables(db.pool, { idType: 'bigint' })
  await db.pool.query(`insert into public.tenants (id, slug, name) values (1, 'one', 'One')`)
})
afterAll(async () => {
  await db.drop()
})

it('a composite (oid first) of a domain over an array of a composite of a domain over a range, enums inside', async () => {
  await db.pool.query(`
    create schema t1;
    create type t1.a_outer as (placeholder int);
    create type t1.colour as enum ('red', 'blue');
    create type t1.frange as range (subtype = float8);
    create domain t1.pos_range as t1.frange check (lower(value) >= 0);
    create type t1.m_inner as (r t1.pos_range, cs t1.colour[]);
    create domain t1.z_list as t1.m_inner[] check (cardinality(value) < 10);
    alter type t1.a_outer add attribute x t1.z_list;
    alter type t1.a_outer drop attribute placeholder;
    create domain t1.b_dom_over_dom as t1.z_list;
    create table t1.thing (id serial primary key, o t1.a_outer, d t1.b_dom_over_dom);`)
  const r = await applyTenantSchema(db.pool, { fromSchema: 't1', targetSchema: 'shared1' })
  expect(r.status).toBe('created')
})

it('a domain over the multirange of a template range type', async () => {
  await db.pool.query(`
    create schema t2;
    create type t2.frange as range (subtype = float8);
    create domain t2.spans as t2.fmultirange check (not isempty(value));
    create table t2.thing (id serial primary key, s t2.spans);`)
  const r = await applyTenantSchema(db.pool, { fromSchema: 't2', targetSchema: 'shared2' }).catch(
    (e: Error) => e,
  )
  if (r instanceof Error) throw r
  expect(r.status).toBe('created')
  await db.pool.query(`insert into shared2.thing (tenant_id, s) values (1, '{[1,2]}')`)
})
