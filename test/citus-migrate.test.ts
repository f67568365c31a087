import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { distribute, planDistribution } from '../src/citus/index.js'
import { migrate, verifyMigration } from '../src/migrate/index.js'
import { applyTenantSchema } from '../src/schema/generate/index.js'
import { NOT_CITUS, onCitus } from './helpers/citus.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'
import { buildLegacyFixture, HOSTILE_SCHEMA, schemaFingerprint } from './helpers/legacy-fixture.js'

describe.skipIf(!onCitus())(`migrate straight into a Citus cluster (${NOT_CITUS})`, () => {
  let db: TestDatabase
  let sourcesBefore: unknown

  beforeAll(async () => {
    // the schema-per-tenant database is the coordinator; its legacy schemas stay local tables
    db = await createTestDatabase('citus_migrate')
    await buildLegacyFixture(db.pool, { rows: 10, target: 'none' })
    sourcesBefore = await schemaFingerprint(db.pool, ['acme', 'globex', HOSTILE_SCHEMA])
  })
  afterAll(async () => {
    await db?.drop()
  })

  it('schema generate, then citus distribute: shared tables distributed by tenant_id, legacy tables left local', async () => {
    expect((await applyTenantSchema(db.pool, { fromSchema: 'acme' })).status).toBe('created')
    const plan = await planDistribution(db.pool)
    expect(plan.refusals.map((r) => `${r.object} ${r.problem}`)).toEqual([])
    const by = Object.fromEntries(
      plan.steps.filter((s) => s.action !== 'foreign-key').map((s) => [s.table, s.action]),
    )
    // the author <-> book cycle: dropped before, added back after, in the same transaction
    expect(
      plan.steps.filter((s) => s.action === 'foreign-key').map((s) => s.sql[0]!.split(' ')[0]),
    ).toEqual(['alter', 'alter'])
    expect(by['public.tenants']).toBe('reference')
    expect(by['public.tenant_domains']).toBe('reference')
    expect(by['public.country']).toBe('reference')
    expect(by['public.book']).toBe('distribute')
    expect(by['public.customers_client']).toBe('local')
    expect(by['public.customers_domain']).toBe('local')
    await distribute(db.pool)
    const again = await planDistribution(db.pool)
    expect(again.steps.filter((s) => s.sql.length > 0)).toEqual([]) // idempotent
    const { rows } = await db.pool.query(
      `select count(distinct colocationid)::int as groups from pg_dist_partition
        where partmethod = 'h' and logicalrelid::text not like '%.%'`,
    )
    expect(rows[0].groups).toBe(1) // every tenant table co-located
    const local = await db.pool.query(
      `select count(*)::int as n from pg_dist_partition p join pg_class c on c.oid = p.logicalrelid
         join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'acme'`,
    )
    expect(local.rows[0].n).toBe(0)
  })

  it('migrate --all copies every tenant into the distributed tables, verified; a rerun copies nothing twice', async () => {
    const report = await migrate({ db: db.pool, all: true, jobs: 2 })
    const status = Object.fromEntries(report.tenants.map((t) => [t.tenantId, t.status]))
    expect(status).toEqual({ '1': 'migrated', '2': 'migrated', '3': 'migrated', '4': 'blocked' })
    expect((await verifyMigration({ db: db.pool })).ok).toBe(true)
    const n = await db.pool.query('select count(*)::int as n from public.book where tenant_id = 3')
    expect(n.rows[0].n).toBe(12)
    const rerun = await migrate({ db: db.pool, all: true, jobs: 2 })
    expect(rerun.tenants.filter((t) => t.status === 'migrated')).toEqual([])
    const after = await db.pool.query(
      'select count(*)::int as n from public.book where tenant_id = 3',
    )
    expect(after.rows[0].n).toBe(12)
    expect(await schemaFingerprint(db.pool, ['acme', 'globex', HOSTILE_SCHEMA])).toEqual(
      sourcesBefore,
    )
  })

  it('a run against a worker is refused: the ledger and the advisory locks live on the coordinator', async () => {
    const url = new URL(db.url)
    url.port = '9701'
    const worker = new pg.Pool({ connectionString: url.toString(), max: 2 })
    try {
      await expect(migrate({ db: worker, all: true })).rejects.toThrow(/Citus worker/)
    } finally {
      await worker.end()
    }
  })

  it('the shared sequences are above the copied ids: a new row gets a fresh id', async () => {
    const { rows } = await db.pool.query(
      `insert into public.tag (tenant_id, label) values (1, 'new') returning id`,
    )
    const max = await db.pool.query(`select max(id)::int8 as m from public.tag where id <> $1`, [
      rows[0].id,
    ])
    expect(BigInt(rows[0].id)).toBeGreaterThan(BigInt(max.rows[0].m))
  })
})
