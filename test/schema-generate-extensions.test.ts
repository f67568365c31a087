import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { applyTenantSchema, generateTenantSchema } from '../src/schema/generate/index.js'
import { installTenantTables } from '../src/tenants/index.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'

let db: TestDatabase
beforeAll(async () => {
  db = await createTestDatabase('schema_generate_install_ext')
  await db.pool.query(`create schema tenant_7;
    create table tenant_7.bookings (id int primary key, room int not null, during tstzrange not null, tags text[],
      constraint bookings_no_overlap exclude using gist (during with &&));
    create index bookings_tags_idx on tenant_7.bookings using gin (tags)`)
  await installTenantTables(db.pool, { idType: 'integer' })
})
afterAll(() => db.drop())

describe('schema generate --install-extensions', () => {
  it('without it: the notes say which extension and how; nothing is installed', async () => {
    const { notes, statements } = await generateTenantSchema(db.pool, { fromSchema: 'tenant_7' })
    expect(notes.join('\n')).toMatch(
      /"bookings_tags_idx" .* needs the btree_gin extension\. Pass --install-extensions/,
    )
    expect(notes.join('\n')).toMatch(/needs the btree_gist extension .* --install-extensions/)
    expect(statements.some((s) => s.startsWith('CREATE EXTENSION'))).toBe(false)
  })

  it('with it: creates btree_gin and btree_gist with the tables; indexes and exclusions lead with tenant_id', async () => {
    const { statements, notes } = await applyTenantSchema(db.pool, {
      fromSchema: 'tenant_7',
      tenantIdType: 'integer',
      installExtensions: true,
    })
    expect(notes).toEqual([])
    expect(statements.slice(1, 3)).toEqual([
      'CREATE EXTENSION IF NOT EXISTS btree_gin',
      'CREATE EXTENSION IF NOT EXISTS btree_gist',
    ])
    expect(statements).toContain(
      'CREATE INDEX "bookings_tags_idx" ON "public"."bookings" USING "gin" ("tenant_id", tags)',
    )
    const { rows } = await db.pool.query(
      `select extname from pg_extension where extname like 'btree_%' order by 1`,
    )
    expect(rows.map((r) => r.extname)).toEqual(['btree_gin', 'btree_gist'])
  })
})
