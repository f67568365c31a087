import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../src/entries/index.js'
import { cli } from './helpers/cli.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'

describe('rowtenancy CLI: init and tenants', () => {
  let db: TestDatabase
  beforeAll(async () => {
    db = await createTestDatabase('cli_tenants')
  })
  afterAll(() => db.drop())

  it('prints help and version', async () => {
    expect((await cli(['--version'])).code).toBe(0)
    expect((await cli(['nonsense'])).code).toBe(2)
  })

  it('init is idempotent; tenants create / list / suspend / activate', async () => {
    const url = ['--database-url', db.url]
    expect((await cli(['init', ...url])).code).toBe(0)
    expect((await cli(['init', ...url])).code).toBe(0)
    const { rows: tables } = await db.pool.query(
      "select string_agg(relname, ',' order by relname) as names from pg_class where relname in ('tenants', 'tenant_domains', 'audit_log')",
    )
    expect(tables[0].names).toBe('audit_log,tenant_domains,tenants')
    const created = await cli([
      'tenants',
      'create',
      '--slug',
      'acme',
      '--name',
      'Acme',
      '--domain',
      'acme.example.com',
      '--json',
      ...url,
    ])
    expect(created.code).toBe(0)
    const acme = JSON.parse(created.stdout)
    expect(acme).toMatchObject({ slug: 'acme', domains: ['acme.example.com'] })
    expect((await cli(['tenants', 'suspend', acme.id, ...url])).stdout).toMatch(/suspended/)
    const listed = JSON.parse(
      (await cli(['tenants', 'list', '--json', '--status', 'suspended', ...url])).stdout,
    )
    expect(listed.map((t: { slug: string }) => t.slug)).toEqual(['acme'])
    expect((await cli(['tenants', 'activate', acme.id, ...url])).code).toBe(0)
  })

  it('bad input: duplicate slug, unknown id, malformed id, unreachable db -> clear error, exit 1, nothing written', async () => {
    const url = ['--database-url', db.url]
    const dup = await cli(['tenants', 'create', '--slug', 'acme', '--name', 'Again', ...url])
    expect(dup.code).toBe(1)
    expect(dup.stderr).toMatch(/DUPLICATE_TENANT.*The slug "acme" is already taken/)
    const badStatus = await cli(['tenants', 'list', '--status', 'archived', ...url])
    expect(badStatus.code).toBe(1)
    expect(badStatus.stderr).toMatch(/INVALID_INPUT.*Unknown tenant status "archived"/)
    const unknown = await cli(['tenants', 'suspend', '999999', ...url])
    expect(unknown.code).toBe(1)
    expect(unknown.stderr).toMatch(/TENANT_NOT_FOUND/)
    const malformed = await cli(['tenants', 'suspend', "1' or 1=1", ...url])
    expect(malformed.stderr).toMatch(/INVALID_TENANT_ID/)
    const down = await cli([
      'tenants',
      'list',
      '--database-url',
      'postgres://postgres@127.0.0.1:1/none',
    ])
    expect(down.code).toBe(1)
    expect(down.stderr).toMatch(/DATABASE_UNREACHABLE.*Check that PostgreSQL is running/)
    const { rows } = await db.pool.query('select count(*)::int as n from tenants')
    expect(rows[0].n).toBe(1)
  })

  it('config file: unknown keys and bad values are errors naming the fix', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'rt-config-'))
    await writeFile(join(dir, 'rowtenancy.config.json'), JSON.stringify({ tabels: ['a'] }))
    await expect(loadConfig({ cwd: dir })).rejects.toThrow(
      /Unknown key "tabels".*Did you mean "tables"/,
    )
    await writeFile(join(dir, 'rowtenancy.config.json'), JSON.stringify({ tenantIdType: 'int8' }))
    await expect(loadConfig({ cwd: dir })).rejects.toThrow(/one of bigint, integer, uuid, text/)
    await writeFile(
      join(dir, 'rowtenancy.config.json'),
      JSON.stringify({ tables: ['accounts'], jobs: 2 }),
    )
    const config = await loadConfig({
      cwd: dir,
      env: { ROWTENANCY_JOBS: '4' },
      flags: { tenantIdType: 'uuid' },
    })
    expect(config).toMatchObject({
      tables: ['accounts'],
      jobs: 4,
      tenantIdType: 'uuid',
      tenantColumn: 'tenant_id',
    })
    const bad = await cli(['tenants', 'list', '--config', join(dir, 'missing.json')])
    expect(bad.stderr).toMatch(/CONFIG_ERROR.*does not exist/)
  })
})
