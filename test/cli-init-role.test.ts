import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { cli } from './helpers/cli.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'

describe('rowtenancy init --runtime-role', () => {
  let db: TestDatabase
  const role = `rt_init_${Math.random().toString(36).slice(2, 8)}`
  beforeAll(async () => {
    db = await createTestDatabase('cli_init_role')
  })
  afterAll(async () => {
    await db.pool.query(`drop owned by ${role}`).catch(() => {})
    await db.pool.query(`drop role if exists ${role}`).catch(() => {})
    await db.drop()
  })

  it('grants DML on the tenant tables, reads only on the tenant directory, nothing on the audit log', async () => {
    const r = await cli(['init', '--database-url', db.url, '--runtime-role', role])
    expect(r.code, r.stderr).toBe(0)
    const { rows } = await db.pool.query(
      `select has_table_privilege($1, 'tenants', 'select') as tenants_select,
              has_table_privilege($1, 'tenants', 'update') as tenants_update,
              has_table_privilege($1, 'tenant_domains', 'select') as domains_select,
              has_table_privilege($1, 'tenant_domains', 'insert') as domains_insert,
              has_table_privilege($1, 'audit_log', 'select') as audit_select,
              has_table_privilege($1, 'audit_log', 'insert') as audit_insert,
              has_table_privilege($1, 'audit_log', 'update') as audit_update,
              has_table_privilege($1, 'audit_log', 'delete') as audit_delete,
              has_table_privilege($1, 'audit_log', 'truncate') as audit_truncate`,
      [role],
    )
    expect(rows[0]).toEqual({
      tenants_select: true,
      tenants_update: false,
      domains_select: true,
      domains_insert: false,
      audit_select: false,
      audit_insert: false,
      audit_update: false,
      audit_delete: false,
      audit_truncate: false,
    })
    // idempotent: a second run keeps the same grants
    expect((await cli(['init', '--database-url', db.url, '--runtime-role', role])).code).toBe(0)
  })
})
