import { CamelCasePlugin, type Kysely } from 'kysely'
import pg from 'pg'
import { describe, expect, it } from 'vitest'
import {
  ConfigError,
  createTenancy,
  InvalidTenantIdError,
  runWithTenant,
  type TenancyOptions,
} from '../src/entries/index.js'
import { TableRegistry } from '../src/entries/kysely.js'
import { serverUrl } from './helpers/db.js'

/** A pool that is never used to connect in these compile-only tests. */
function idlePool(): pg.Pool {
  return new pg.Pool({ connectionString: serverUrl(), max: 1 })
}

interface NotesDB {
  notes: { org_id: string; id: string; body: string }
  accounts: { tenant_id: string; id: string; name: string }
}

describe('createTenancy options', () => {
  const base = (): TenancyOptions => ({ pool: idlePool(), tables: ['accounts'] })

  it('fails closed on bad configuration, before any query', () => {
    expect(() => createTenancy({ ...base(), tabels: ['x'] } as unknown as TenancyOptions)).toThrow(
      /Unknown createTenancy option "tabels"/,
    )
    expect(() => createTenancy({ tables: ['accounts'] } as unknown as TenancyOptions)).toThrow(
      /needs pool/,
    )
    expect(() => createTenancy({ ...base(), tables: [] })).toThrow(
      /at least one tenant-aware table/,
    )
    expect(() => createTenancy({ ...base(), tenantIdType: 'int8' as 'bigint' })).toThrow(
      ConfigError,
    )
    expect(() => createTenancy({ ...base(), tables: ['a.b.c'] })).toThrow(/more than one dot/)
    expect(() => createTenancy({ ...base(), tenantColumn: '' })).toThrow(ConfigError)
    expect(() =>
      createTenancy({
        ...base(),
        tables: ['accounts', { name: 'accounts', tenantColumn: 'org_id' }],
      }),
    ).toThrow(/listed twice with different tenant columns/)
    expect(() =>
      createTenancy({ ...base(), plugins: [{}] as unknown as TenancyOptions['plugins'] }),
    ).toThrow(/plugins must be an array of Kysely plugins/)
  })

  it('returns a frozen tenancy with resolved, frozen options and one scoped instance', async () => {
    const tenancy = createTenancy({ ...base(), plugins: [new CamelCasePlugin()] })
    expect(Object.isFrozen(tenancy)).toBe(true)
    expect(Object.isFrozen(tenancy.options)).toBe(true)
    expect(tenancy.options).toMatchObject({
      tenantColumn: 'tenant_id',
      tenantIdType: 'bigint',
      audit: { table: 'audit_log' },
    })
    expect(tenancy.options.adminPool).toBe(tenancy.options.pool)
    expect(tenancy.kysely()).toBe(tenancy.kysely())
    expect(tenancy.tables.has('accounts')).toBe(true)
    await tenancy.destroy()
    await tenancy.destroy() // idempotent
    expect((tenancy.options.pool as pg.Pool).ended).toBe(true)
  })
})

describe('tenant id types', () => {
  it('binds the canonical id: bigint "007" -> "7"; a malformed id never reaches SQL', async () => {
    const tenancy = createTenancy({ pool: idlePool(), tables: ['accounts'] })
    const db = tenancy.kysely<NotesDB>()
    const q = db.selectFrom('accounts').selectAll()
    expect(runWithTenant('007', () => q.compile()).parameters).toEqual(['7'])
    expect(runWithTenant(7n, () => q.compile()).parameters).toEqual(['7'])
    expect(() => runWithTenant('7 or 1=1', () => q.compile())).toThrow(InvalidTenantIdError)
    await tenancy.destroy()
  })

  it('uuid ids are lower-cased; explicit uuid values compare canonically', async () => {
    const tenancy = createTenancy({ pool: idlePool(), tables: ['accounts'], tenantIdType: 'uuid' })
    const db = tenancy.kysely<NotesDB>()
    const id = 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'
    const compiled = runWithTenant(id, () =>
      db
        .insertInto('accounts')
        .values({ tenant_id: id.toLowerCase(), id: '1', name: 'x' })
        .compile(),
    )
    expect(compiled.parameters).toEqual([id.toLowerCase(), '1', 'x'])
    expect(() =>
      runWithTenant('not-a-uuid', () => db.selectFrom('accounts').selectAll().compile()),
    ).toThrow(InvalidTenantIdError)
    await tenancy.destroy()
  })

  it('text ids and insert-select casts use the configured type', async () => {
    const tenancy = createTenancy({ pool: idlePool(), tables: ['accounts'], tenantIdType: 'text' })
    const db = tenancy.kysely<NotesDB>()
    expect(
      runWithTenant('acme', () =>
        db
          .insertInto('accounts')
          .columns(['id', 'name'])
          .expression((eb) => eb.selectFrom('accounts').select(['id', 'name']))
          .compile(),
      ).sql,
    ).toBe(
      'insert into "accounts" ("id", "name", "tenant_id") select "id", "name", cast($1 as text) as "tenant_id" ' +
        'from "accounts" where "accounts"."tenant_id" = $2',
    )
    await tenancy.destroy()
  })
})

describe('table registry', () => {
  it('per-table tenant columns and schema-qualified names', async () => {
    const tenancy = createTenancy({
      pool: idlePool(),
      tables: ['app.accounts', { name: 'notes', tenantColumn: 'org_id' }],
    })
    const db: Kysely<NotesDB> = tenancy.kysely<NotesDB>()
    const compiled = runWithTenant('3', () =>
      db
        .selectFrom('notes')
        .innerJoin('accounts', 'accounts.id', 'notes.id')
        .select('notes.body')
        .compile(),
    )
    expect(compiled.sql).toBe(
      'select "notes"."body" from "notes" inner join "accounts" on "accounts"."id" = "notes"."id" ' +
        'and "accounts"."tenant_id" = $1 where "notes"."org_id" = $2',
    )
    await tenancy.destroy()
  })

  it('matches a bare reference to a schema-qualified entry, but not another schema (fail closed by name)', () => {
    const registry = TableRegistry.from(['app.accounts', 'transactions'])
    expect(registry.lookup('accounts')?.qualifiedName).toBe('app.accounts')
    expect(registry.lookup('accounts', 'app')?.schema).toBe('app')
    expect(registry.lookup('accounts', 'other')).toBeUndefined()
    expect(registry.lookup('transactions', 'any_schema')?.name).toBe('transactions')
    expect(registry.find('app.accounts')?.tenantColumn).toBe('tenant_id')
    expect(registry.has('currencies')).toBe(false)
    expect(Object.isFrozen(registry.tables)).toBe(true)
    expect(() =>
      TableRegistry.from(['a.accounts', { name: 'accounts', tenantColumn: 'org_id' }]),
    ).toThrow(/share a name but have different tenant columns/)
  })
})
