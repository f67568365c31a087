import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { applyTenantSchema } from '../src/schema/generate/generate.js'
import { installTenantTables } from '../src/tenants/index.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'

/*
 * The way out of the shared-sequence side channel: with `uuidV7Keys`, uuid keys
 * get a version 7 UUID default, so a tenant's new ids say nothing about how many
 * rows other tenants inserted; integer keys are left alone and named in a note.
 */

let db: TestDatabase

beforeAll(async () => {
  db = await createTestDatabase('uuid_v7')
  await installTenantTables(db.pool, { idType: 'bigint' })
  await db.pool.query(`
    insert into tenants (id, slug, name) values (1, 'one', 'One');
    create schema tpl;
    create table tpl.notes (id uuid primary key, body text not null);
    create table tpl.counters (id serial primary key, n int not null);`)
})
afterAll(() => db?.drop())

describe('schema generate --uuid-v7-keys', () => {
  it('gives uuid keys a version 7 default, notes integer keys, and reapplies as up-to-date', async () => {
    const first = await applyTenantSchema(db.pool, {
      fromSchema: 'tpl',
      targetSchema: 'public',
      uuidV7Keys: true,
    })
    expect(first.status).toBe('created')
    expect(
      first.statements.some((s) => s.includes('FUNCTION "public"."rowtenancy_uuid_v7"()')),
    ).toBe(true)
    expect(first.notes.join('\n')).toMatch(
      /counters: its key comes from a sequence shared by all tenants/,
    )
    const { rows } = await db.pool.query(
      `insert into notes (tenant_id, body) values (1, 'a'), (1, 'b') returning id::text`,
    )
    for (const r of rows) expect(r.id[14]).toBe('7')
    const again = await applyTenantSchema(db.pool, {
      fromSchema: 'tpl',
      targetSchema: 'public',
      uuidV7Keys: true,
    })
    expect(again.status).toBe('up-to-date')
  })
})
