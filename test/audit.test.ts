import { sql } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import {
  type AuditEvent,
  auditLogDdl,
  installAuditLog,
  statementFingerprint,
} from '../src/audit/index.js'
import {
  ConfigError,
  createTenancy,
  InvalidInputError,
  runWithTenant,
  type Tenancy,
  withoutTenant,
} from '../src/entries/index.js'
import type { TestDatabase } from './helpers/db.js'
import {
  type createRuntimeRole,
  type FinanceDB,
  financeTenancy,
  seedFinance,
  TABLES,
} from './kysely-fixture.js'

let fixture: Awaited<ReturnType<typeof financeTenancy>>
let tdb: TestDatabase
let role: Awaited<ReturnType<typeof createRuntimeRole>> | undefined
let tenancy: Tenancy
const logged: AuditEvent[] = []
let actorNow: string | undefined = 'default-actor'

beforeAll(async () => {
  fixture = await financeTenancy('audit', {
    prepare: (pool) => installAuditLog(pool),
    runtimeMax: 3,
    adminApplicationName: 'rt-admin',
    audit: { logger: (e) => void logged.push(e), actor: () => actorNow },
  })
  ;({ tdb, role, tenancy } = fixture)
})

afterAll(() => fixture?.close())

beforeEach(async () => {
  logged.length = 0
  actorNow = 'default-actor'
  await tdb.pool.query('truncate audit_log')
})

async function auditRows(): Promise<any[]> {
  const { rows } = await tdb.pool.query(
    'select source, reason, actor, tenant_context, statement, fingerprint, row_count, error from audit_log order by id',
  )
  return rows
}

describe('audit log table', () => {
  it('renders its DDL from declared columns', () => {
    expect(auditLogDdl({ table: 'ops.audit_log' })).toEqual([
      'create schema if not exists "ops"',
      'create table if not exists "ops"."audit_log" (\n' +
        '  "id" bigint generated always as identity primary key,\n' +
        '  "at" timestamptz not null default now(),\n' +
        `  "source" text not null check (source in ('allObjects', 'withoutTenant')),\n` +
        '  "reason" text not null,\n' +
        '  "actor" text,\n' +
        '  "tenant_context" text,\n' +
        '  "statement" text not null,\n' +
        '  "fingerprint" text not null,\n' +
        '  "row_count" bigint,\n' +
        '  "error" text\n' +
        ')',
      'create index if not exists "audit_log_at_idx" on "ops"."audit_log" (at)',
    ])
  })

  it('installs idempotently and rejects a bad table name', async () => {
    await installAuditLog(tdb.pool)
    await installAuditLog(tdb.pool, { table: 'ops.audit_log' })
    await installAuditLog(tdb.pool, { table: 'ops.audit_log' })
    const { rows } = await tdb.pool.query(`select to_regclass('ops.audit_log') is not null as ok`)
    expect(rows[0].ok).toBe(true)
    expect(() => auditLogDdl({ table: 'a.b.c' })).toThrow(InvalidInputError)
    expect(() => auditLogDdl({ table: '' })).toThrow(InvalidInputError)
  })
})

describe('statement fingerprint', () => {
  it('keeps no values: literals, numbers and dollar-quoted strings become ?', () => {
    const a = statementFingerprint(
      `select * from "t1" where name = 'O''Brien' and n = 42 and x = $1 -- note 'x'\n and y = $$secret$$`,
    )
    expect(a.statement).toBe('select * from "t1" where name = ? and n = ? and x = $1 and y = ?')
    const b = statementFingerprint(
      `select * from "t1"  where name = 'Bob' and n = 7 and x = $1 and y = $$z$$`,
    )
    expect(b.fingerprint).toBe(a.fingerprint)
    expect(a.fingerprint).toMatch(/^[0-9a-f]{16}$/)
  })
})

describe('allObjects(reason)', () => {
  it('reads across tenants and records every statement: reason, actor, tenant context, fingerprint, row count', async () => {
    const admin = tenancy.allObjects<FinanceDB>('monthly revenue report', { actor: 'alice' })
    const rows = await admin
      .selectFrom('accounts')
      .select('name')
      .where('name', 'like', 'a%')
      .execute()
    expect(rows).toHaveLength(2)
    await runWithTenant('2', () =>
      admin.deleteFrom('transactions').where('amount', '>', '250').execute(),
    )
    const audit = await auditRows()
    expect(audit).toEqual([
      {
        source: 'allObjects',
        reason: 'monthly revenue report',
        actor: 'alice',
        tenant_context: null,
        statement: 'select "name" from "accounts" where "name" like $1',
        fingerprint: statementFingerprint('select "name" from "accounts" where "name" like $1')
          .fingerprint,
        row_count: '2',
        error: null,
      },
      {
        source: 'allObjects',
        reason: 'monthly revenue report',
        actor: 'alice',
        tenant_context: '2',
        statement: 'delete from "transactions" where "amount" > $1',
        fingerprint: expect.stringMatching(/^[0-9a-f]{16}$/),
        row_count: '1',
        error: null,
      },
    ])
    // The parameter values ('a%', '250') are nowhere in the log.
    expect(JSON.stringify(audit)).not.toMatch(/a%|250/)
    expect(logged.map((e) => [e.reason, e.rowCount])).toEqual([
      ['monthly revenue report', 2],
      ['monthly revenue report', 1],
    ])
    await seedFinance(tdb.pool)
  })

  it('takes the default actor from audit.actor when the call names none', async () => {
    actorNow = 'cron'
    await tenancy
      .allObjects<FinanceDB>('nightly export')
      .selectFrom('currencies')
      .selectAll()
      .execute()
    expect((await auditRows())[0].actor).toBe('cron')
  })

  it('runs on adminPool', async () => {
    const { rows } = await sql<{
      app: string
    }>`select current_setting('application_name') as app`.execute(tenancy.allObjects('which pool'))
    expect(rows[0]?.app).toBe('rt-admin')
  })

  it('records a failed statement with its error code and no row count', async () => {
    const admin = tenancy.allObjects('broken query', { actor: 'bob' })
    await expect(sql`select * from no_such_table`.execute(admin)).rejects.toThrow(/no_such_table/)
    const [row] = await auditRows()
    expect(row).toMatchObject({ reason: 'broken query', row_count: null, error: '42P01' })
  })

  it("pitfall: a pool of one connection does not deadlock: the event is written on the statement's connection", async () => {
    const tiny = createTenancy({
      pool: new pg.Pool({ connectionString: role!.url, max: 1 }),
      adminPool: new pg.Pool({ connectionString: tdb.url, max: 1 }),
      tables: TABLES,
    })
    try {
      const admin = tiny.allObjects<FinanceDB>('tiny pool')
      await Promise.all([
        admin.selectFrom('accounts').selectAll().execute(),
        admin.selectFrom('transactions').selectAll().execute(),
      ])
      expect((await auditRows()).map((r) => r.row_count)).toEqual(['4', '5'])
    } finally {
      await tiny.destroy()
    }
  })

  it('pitfall: statements in a rolled-back transaction stay in the audit log', async () => {
    const admin = tenancy.allObjects<FinanceDB>('bulk fix', { actor: 'carol' })
    await expect(
      admin.transaction().execute(async (trx) => {
        await trx.updateTable('accounts').set({ name: 'x' }).execute()
        throw new Error('changed my mind')
      }),
    ).rejects.toThrow('changed my mind')
    const audit = await auditRows()
    expect(audit).toMatchObject([
      { reason: 'bulk fix', statement: 'update "accounts" set "name" = $1', row_count: '4' },
    ])
    const { rows } = await tdb.pool.query(
      `select count(*)::int as n from accounts where name = 'x'`,
    )
    expect(rows[0].n).toBe(0)
  })

  it('needs a reason', () => {
    expect(() => tenancy.allObjects('  ')).toThrow(InvalidInputError)
    expect(() => tenancy.allObjects(undefined as unknown as string)).toThrow(/non-empty reason/)
  })

  it('fails closed when the audit table is missing: the rows are withheld', async () => {
    const noTable = createTenancy({
      pool: new pg.Pool({ connectionString: role!.url, max: 1 }),
      adminPool: new pg.Pool({ connectionString: tdb.url, max: 1 }),
      tables: TABLES,
      audit: { table: 'missing_audit_log' },
    })
    try {
      const admin = noTable.allObjects<FinanceDB>('report')
      await expect(admin.selectFrom('accounts').selectAll().execute()).rejects.toThrow(ConfigError)
      await expect(admin.selectFrom('accounts').selectAll().execute()).rejects.toThrow(
        /installAuditLog/,
      )
    } finally {
      await noTable.destroy()
    }
  })
})

describe('withoutTenant(reason, fn) through the scoped instance', () => {
  it('does not filter, and audits every statement with the scope reason and actor', async () => {
    const db = tenancy.kysely<FinanceDB>()
    const rows = await runWithTenant('1', () =>
      withoutTenant(
        'support ticket 812',
        () => db.selectFrom('accounts').select('name').orderBy('name').execute(),
        { actor: 'support-bob' },
      ),
    )
    expect(rows.map((r) => r.name)).toEqual(['alice-1', 'alice-2', 'bob-1', 'carol-2'])
    expect(await auditRows()).toEqual([
      {
        source: 'withoutTenant',
        reason: 'support ticket 812',
        actor: 'support-bob',
        tenant_context: '1',
        statement: 'select "name" from "accounts" order by "name"',
        fingerprint: expect.any(String),
        row_count: '4',
        error: null,
      },
    ])
    expect(logged).toHaveLength(1)
  })

  it('scoped statements outside withoutTenant are not audited', async () => {
    const db = tenancy.kysely<FinanceDB>()
    await runWithTenant('1', () => db.selectFrom('accounts').selectAll().execute())
    expect(await auditRows()).toEqual([])
    expect(logged).toEqual([])
  })

  it('falls back to the default actor when the scope names none', async () => {
    actorNow = 'ops-script'
    const db = tenancy.kysely<FinanceDB>()
    await withoutTenant('cleanup', () => db.selectFrom('transactions').selectAll().execute())
    expect((await auditRows())[0]).toMatchObject({
      actor: 'ops-script',
      tenant_context: null,
      row_count: '5',
    })
  })
})
