import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { discoverTenantTables, tablesKeyedElsewhere } from '../src/schema/rls-apply.js'
import { installTenantTables } from '../src/tenants/index.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'

describe('discoverTenantTables', () => {
  let db: TestDatabase
  beforeAll(async () => {
    db = await createTestDatabase('discover')
    await installTenantTables(db.pool)
    await db.pool.query(`
      create table accounts (tenant_id bigint not null references tenants(id), id bigint, primary key (tenant_id, id));
      create table entries (tenant_id bigint not null references tenants(id), id bigint, account_id bigint,
        primary key (tenant_id, id), foreign key (tenant_id, account_id) references accounts (tenant_id, id));
      create table legacy_nofk (tenant_id bigint, note text);
      create table customers_client (id bigint primary key, schema_name text);
      create table customers_domain (domain text primary key, tenant_id bigint references customers_client(id));
      create table both_keys (tenant_id bigint references customers_client(id) references tenants(id), note text);`)
  })
  afterAll(() => db.drop())

  it('finds tenant tables (composite FKs included) but not a legacy table whose tenant_id points elsewhere', async () => {
    const names = (await discoverTenantTables(db.pool)).map((t) => t.name)
    // a column that keys tenants too is a tenant column, whatever else it keys
    expect(names).toEqual(['accounts', 'both_keys', 'entries', 'legacy_nofk'])
  })

  it('tablesKeyedElsewhere: the tables left out, each with the table its column keys', async () => {
    expect(await tablesKeyedElsewhere(db.pool)).toEqual([
      {
        schema: 'public',
        name: 'customers_domain',
        qualified: 'public.customers_domain',
        references: 'public.customers_client',
      },
    ])
  })
})
