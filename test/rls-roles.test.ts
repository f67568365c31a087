import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { cli } from './helpers/cli.js'
import { createTestDatabase, serverUrl, type TestDatabase } from './helpers/db.js'

const role = `rt_init_${randomBytes(4).toString('hex')}`

describe('rowtenancy init --runtime-role', () => {
  let db: TestDatabase
  beforeAll(async () => {
    db = await createTestDatabase('rls_roles')
  })
  afterAll(async () => {
    await db.drop()
    const c = new pg.Client({ connectionString: serverUrl() })
    await c.connect()
    await c.query(`drop role if exists "${role}"`).finally(() => c.end())
  })

  it('creates the runtime role with DML grants only, idempotently', async () => {
    const first = await cli(['init', '--database-url', db.url, '--runtime-role', role, '--json'])
    expect(first.code).toBe(0)
    expect(JSON.parse(first.stdout).runtimeRole).toEqual({ name: role, created: true })
    const again = await cli(['init', '--database-url', db.url, '--runtime-role', role, '--json'])
    expect(JSON.parse(again.stdout).runtimeRole).toEqual({ name: role, created: false })
    const { rows } = await db.pool.query(
      `select rolsuper, rolbypassrls, rolcanlogin,
              has_table_privilege($1, 'public.tenants', 'select, insert, update, delete') as dml,
              has_table_privilege($1, 'public.tenants', 'truncate') as can_truncate,
              exists (select 1 from pg_class where relowner = (select oid from pg_roles where rolname = $1)) as owns
         from pg_roles where rolname = $1`,
      [role],
    )
    expect(rows[0]).toEqual({
      rolsuper: false,
      rolbypassrls: false,
      rolcanlogin: true,
      dml: true,
      can_truncate: false,
      owns: false,
    })
    // default privileges: tables the owner creates later are usable too
    await db.pool.query('create table later (tenant_id bigint not null, x int)')
    const later = await db.pool.query(
      `select has_table_privilege($1, 'public.later', 'select') as ok`,
      [role],
    )
    expect(later.rows[0].ok).toBe(true)
  })

  it('refuses an unsafe runtime role (the connected owner / a superuser): exit 1, nothing granted', async () => {
    const owner = new URL(db.url).username || 'postgres'
    const res = await cli(['init', '--database-url', db.url, '--runtime-role', owner])
    expect(res.code).toBe(1)
    expect(res.stderr).toMatch(/UNSAFE_ROLE.*superuser/)
  })
})
