import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { afterAll, beforeAll } from 'vitest'
import { exportTenant, tenantChecksums, tenantTables } from '../../src/lifecycle/index.js'
import { templateCopies, withClient } from './crash-harness.js'
import { createTestDatabase, type TestDatabase } from './db.js'
import { buildLifecycleSource, buildLifecycleTarget, rowsByTenant } from './lifecycle-fixture.js'

/** The layout of the lifecycle fixture's databases. */
export const LIFECYCLE_LAYOUT = {
  schema: 'public',
  tenantsSchema: 'public',
  tenantColumn: 'tenant_id',
  idType: 'bigint',
} as const

/** The library's checksums of tenant `id`'s tables at `url` (UTC, one transaction). */
export function tenantSums(url: string, id: string) {
  return withClient(async (c) => {
    await c.query('begin')
    await c.query("select set_config('TimeZone', 'UTC', true)")
    return await tenantChecksums(
      c,
      LIFECYCLE_LAYOUT,
      id,
      (await tenantTables(c, LIFECYCLE_LAYOUT)).tables,
    )
  }, url)
}

/** The rows of one statement at `url`, on a connection of its own. */
export function queryAt(url: string, text: string, values: unknown[] = []): Promise<any[]> {
  return withClient(async (c) => (await c.query(text, values)).rows, url)
}

/** {@link rowsByTenant} of the database at `url`. */
export async function rowsAt(url: string): Promise<Record<string, string>> {
  const p = new pg.Pool({ connectionString: url, max: 1 })
  try {
    return await rowsByTenant(p)
  } finally {
    await p.end()
  }
}

/** The entries of `rows` whose key `keep` keeps. */
export const splitRows = (rows: Record<string, string>, keep: (k: string) => boolean) =>
  Object.fromEntries(Object.entries(rows).filter(([k]) => keep(k)))

/** A lifecycle source and an empty target, filled in by the file's `beforeAll`. */
export interface MoveFixture {
  source: TestDatabase
  target: TestDatabase
  /** A scratch directory (a move's work directory), removed after the file. */
  dir: string
  /** A clean export of tenant 3. */
  archive: string
  /** Tenant 3's rows at the source (`table@3 -> count:sum`), and every other tenant's. */
  tenant3: Record<string, string>
  others: Record<string, string>
  /** Tenant 3's checksums at the source. */
  original: Awaited<ReturnType<typeof tenantSums>>
  /** A copy of `db` (its template) for one test; dropped after the file. */
  copyOf(db: TestDatabase, label: string): Promise<string>
}

/**
 * Registers the file's `beforeAll` / `afterAll` for two databases named
 * `<prefix>_src` / `<prefix>_dst`: the lifecycle source (three tenants) and
 * an empty target, used as templates, with tenant 3 exported once.
 */
export function useMoveFixture(prefix: string): MoveFixture {
  const copies = templateCopies()
  const fx = {
    copyOf: (db: TestDatabase, label: string) => copies.copyOf(db.name, label),
  } as MoveFixture
  beforeAll(async () => {
    fx.source = await createTestDatabase(`${prefix}_src`)
    fx.target = await createTestDatabase(`${prefix}_dst`)
    await buildLifecycleSource(fx.source.pool)
    await buildLifecycleTarget(fx.target.pool)
    fx.dir = await mkdtemp(join(tmpdir(), `rt-${prefix}-`))
    fx.archive = join(fx.dir, 'clean-3.rtar')
    await exportTenant({ db: fx.source.pool, tenantId: '3', out: fx.archive })
    const rows = await rowsByTenant(fx.source.pool)
    fx.tenant3 = splitRows(rows, (k) => k.endsWith('@3'))
    fx.others = splitRows(rows, (k) => !k.endsWith('@3'))
    await fx.source.pool.end()
    await fx.target.pool.end()
    fx.original = await tenantSums(fx.source.url, '3')
  })
  afterAll(async () => {
    await copies.dropAll()
    await fx.source?.drop()
    await fx.target?.drop()
    if (fx.dir) await rm(fx.dir, { recursive: true, force: true })
  })
  return fx
}
