import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  DEFERRED_INDEX_TABLE,
  deferIndexes,
  rebuildDeferredIndexes,
} from '../src/migrate/deferred-indexes.js'
import { ensureLedger, ID_MAP_TABLE, LEDGER_TABLE } from '../src/migrate/ledger.js'
import { revokeAllButOwner } from '../src/sql/privileges.js'
import { onCitus } from './helpers/citus.js'
import { createTestDatabase, serverUrl, type TestDatabase, urlFor } from './helpers/db.js'

/**
 * The guards around dropping the shared tables' indexes for a copy, as a
 * migration role that is NOT a superuser sees them: a table under FORCE ROW LEVEL
 * SECURITY looks empty to it with no tenant bound, and the schema's default
 * privileges give an app role DML on every new table, the record of the dropped
 * indexes included.
 */
let db: TestDatabase
const owner = `rt_mig_owner_${randomBytes(4).toString('hex')}`
const app = `rt_mig_app_${randomBytes(4).toString('hex')}`
const password = randomBytes(8).toString('hex')
let ownerPool: pg.Pool

async function indexNames(): Promise<string[]> {
  const { rows } = await db.pool.query<{ n: string }>(
    `select indexname as n from pg_indexes where schemaname = 's' order by 1`,
  )
  return rows.map((r) => r.n)
}

beforeAll(async () => {
  db = await createTestDatabase('deferred_guard')
  await db.pool.query(`
    create role "${owner}" login password '${password}';
    create role "${app}";
    create schema s authorization "${owner}";
    grant create on database "${db.name}" to "${owner}";`)
  const url = new URL(urlFor(db.name))
  url.username = owner
  url.password = password
  ownerPool = new pg.Pool({ connectionString: url.toString(), max: 2 })
  await ownerPool.query(`
    alter default privileges in schema s grant select, insert, update, delete on tables to "${app}";
    alter default privileges in schema s grant usage, select, update on sequences to "${app}";
    create table s.full_t (tenant_id bigint not null, id bigint not null, name text, primary key (tenant_id, id));
    create index full_t_name on s.full_t (name);
    alter table s.full_t enable row level security;
    alter table s.full_t force row level security;
    create policy p on s.full_t using (tenant_id = nullif(current_setting('rowtenancy.tenant_id', true), '')::bigint);
    create table s.empty_t (tenant_id bigint not null, id bigint not null, name text, primary key (tenant_id, id));
    create index empty_t_name on s.empty_t (name);`)
  // rows the owner cannot see without a tenant bound (inserted by the superuser)
  await db.pool.query(`insert into s.full_t select 1, g, 'n' || g from generate_series(1, 50) g`)
})
afterAll(async () => {
  await ownerPool?.end()
  await db.drop()
  const admin = new pg.Client({ connectionString: serverUrl() })
  await admin.connect()
  await admin.query(`drop role if exists "${owner}"`).catch(() => {})
  await admin.query(`drop role if exists "${app}"`).catch(() => {})
  await admin.end()
})

describe.skipIf(onCitus())(
  "deferred indexes and the migration's own tables, as a migration role that is not a superuser",
  () => {
    it('keeps the indexes of a table that holds rows it cannot see (FORCE RLS, no tenant)', async () => {
      const client = await ownerPool.connect()
      try {
        const seen = await client.query('select count(*)::int as n from s.full_t')
        expect(seen.rows[0].n).toBe(0)
        expect(await deferIndexes(client, 's', ['full_t', 'empty_t'], 'tenant_id')).toEqual([])
      } finally {
        client.release()
      }
      expect(await indexNames()).toContain('full_t_name')
    })

    it('keeps the record of dropped indexes from the app role, and builds only a CREATE INDEX from it', async () => {
      const client = await ownerPool.connect()
      try {
        const dropped = await deferIndexes(client, 's', ['empty_t'], 'tenant_id')
        expect(dropped.map((d) => d.name)).toEqual(['empty_t_name'])
      } finally {
        client.release()
      }
      const grants = await db.pool.query<{ grantee: string }>(
        `select grantee from information_schema.role_table_grants
        where table_schema = 's' and table_name = $1 and grantee <> $2`,
        [DEFERRED_INDEX_TABLE, owner],
      )
      expect(grants.rows).toEqual([])
      // a definition tampered with (by anyone who could write it) is refused, not run
      await db.pool.query(
        `update s.${DEFERRED_INDEX_TABLE} set definition = definition || '; alter table s.full_t disable row level security'`,
      )
      await expect(rebuildDeferredIndexes(ownerPool, 's', 1)).rejects.toThrow(
        /not one CREATE INDEX statement/,
      )
      const rls = await db.pool.query(
        `select relrowsecurity from pg_class where oid = 's.full_t'::regclass`,
      )
      expect(rls.rows[0].relrowsecurity).toBe(true)
      // restored, it builds
      await db.pool.query(
        `update s.${DEFERRED_INDEX_TABLE} set definition = split_part(definition, ';', 1)`,
      )
      expect((await rebuildDeferredIndexes(ownerPool, 's', 1)).map((i) => i.name)).toEqual([
        'empty_t_name',
      ])
      expect(await indexNames()).toContain('empty_t_name')
    })

    it("the ledger and the id map are the owner's alone; the serving map only readable by the app", async () => {
      await ensureLedger(ownerPool, 's', { idMap: true })
      await ownerPool.query(
        'create table s.serving_like (tenant_id bigint primary key, n bigserial); create table s.log_like (id bigserial)',
      )
      await revokeAllButOwner(ownerPool, 's.serving_like', { keepSelect: true })
      await revokeAllButOwner(ownerPool, 's.log_like')
      const privileges = await db.pool.query<{ t: string; p: string }>(
        `select table_name as t, privilege_type as p from information_schema.role_table_grants
        where table_schema = 's' and grantee = $1 and table_name = any($2) order by 1, 2`,
        [app, [LEDGER_TABLE, ID_MAP_TABLE, 'serving_like', 'log_like']],
      )
      expect(privileges.rows).toEqual([{ t: 'serving_like', p: 'SELECT' }])
      // and the sequences they own: an app role that could setval the log's ids stops every write
      const sequences = await db.pool.query<{ s: string }>(
        `select c.relname as s from pg_class c, aclexplode(c.relacl) a
          where c.relnamespace = 's'::regnamespace and c.relkind = 'S' and a.grantee = $1::regrole`,
        [app],
      )
      expect(sequences.rows).toEqual([])
    })
  },
)
