import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { distribute, planDistribution } from '../src/citus/index.js'
import { migrate, rollbackTenants, verifyMigration } from '../src/migrate/index.js'
import { applyTenantSchema } from '../src/schema/generate/index.js'
import { quoteIdent } from '../src/sql/quote.js'
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
    // the copy's checksums are separate statements on Citus; verify recomputes them all
    const verified = await verifyMigration({ db: db.pool })
    expect(verified.tenants.map((t) => [t.tenantId, t.ok, t.problems])).toEqual([
      ['1', true, []],
      ['2', true, []],
      ['3', true, []],
    ])
    // the blocked tenant is named, and makes the whole report not ok
    expect(verified.missing.map((m) => [m.tenantId, m.state])).toEqual([['4', 'not started']])
    expect(verified.ok).toBe(false)
    expect((await verifyMigration({ db: db.pool, tenantIds: ['1', '2', '3'] })).ok).toBe(true)
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

  it('as a role under the row-level policies (no superuser): rollback and verify see the tenant on the workers; the copy needs BYPASSRLS and says so', async () => {
    // set_config stays on the coordinator: bound that way, the workers saw no tenant (rollback
    // deleted nothing); the binding is SET LOCAL, forwarded to the workers
    const role = `rt_citus_mig_${randomBytes(3).toString('hex')}`
    const r = quoteIdent(role)
    await db.pool.query(`create role ${r} login nosuperuser`)
    const url = new URL(db.url)
    url.username = role
    const pool = new pg.Pool({ connectionString: url.toString(), max: 4 })
    try {
      for (const s of ['acme', 'globex', HOSTILE_SCHEMA]) {
        await db.pool.query(`grant usage on schema ${quoteIdent(s)} to ${r}`)
        await db.pool.query(`grant select on all tables in schema ${quoteIdent(s)} to ${r}`)
      }
      await db.pool.query(`grant usage, create on schema public to ${r}`)
      await db.pool.query(
        `grant select, insert, update, delete on all tables in schema public to ${r}`,
      )
      await db.pool.query(`grant usage, select, update on all sequences in schema public to ${r}`)
      const count = async () =>
        (await db.pool.query('select count(*)::int as n from public.book where tenant_id = 2'))
          .rows[0].n
      const before = await count()
      expect(before).toBeGreaterThan(0)
      const [rolled] = await rollbackTenants({ db: pool, tenantIds: ['2'] })
      expect(rolled?.deleted.book).toBe(before)
      expect(await count()).toBe(0)
      // Citus copies INSERT ... SELECT into the shards with COPY, which row-level security refuses
      const err = await migrate({ db: pool, all: true, jobs: 2 }).catch((e) => e)
      expect(err.message).toMatch(/row-level security applies to this role on public\.\w+/)
      expect(err.message).toMatch(/BYPASSRLS/)
      expect(await count()).toBe(0)
      const dry = await migrate({ db: pool, all: true, dryRun: true })
      expect(dry.ok).toBe(false)
      expect(dry.warnings.join('\n')).toMatch(/A real run would stop: .*row-level security/)
      await db.pool.query(`alter role ${r} bypassrls`)
      const report = await migrate({ db: pool, all: true, jobs: 2 })
      expect(report.guard).toBe('deferred')
      expect(report.tenants.find((t) => t.tenantId === '2')?.error).toBeUndefined()
      expect(report.tenants.find((t) => t.tenantId === '2')?.status).toBe('migrated')
      expect(await count()).toBe(before)
      await db.pool.query(`alter role ${r} nobypassrls`)
      // verify, under the policies again, reads each tenant's rows on the workers (tenant 1
      // got a new tag above: its difference from the source is found, as a superuser finds it)
      const verified = await verifyMigration({ db: pool, tenantIds: ['1', '2', '3'] })
      expect(verified.tenants.map((t) => [t.tenantId, t.problems])).toEqual([
        ['1', ['tag: source 5 rows, target 6 rows']],
        ['2', []],
        ['3', []],
      ])
      const asSuperuser = await verifyMigration({ db: db.pool, tenantIds: ['1'], record: false })
      expect(asSuperuser.tenants[0]?.problems).toEqual(verified.tenants[0]?.problems)
    } finally {
      await pool.end()
      await db.pool.query(`drop owned by ${r}`).catch(() => {})
    }
  })
})
