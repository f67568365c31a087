import { setTimeout as sleep } from 'node:timers/promises'
import { type ControlledTransaction, sql } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { statementFingerprint } from '../src/audit/index.js'
import {
  createTenancy,
  currentTenant,
  InvalidInputError,
  MissingTenantError,
  runDoctor,
  runWithTenant,
  setCurrentTenant,
  TenantStore,
  UnsafeRoleError,
  UnsupportedQueryError,
  withoutTenant,
} from '../src/entries/index.js'
import { createTenantResolution, fromHeader, fromPath } from '../src/http/index.js'
import { installTenantTables } from '../src/tenants/index.js'
import {
  ATTACK_TABLES,
  type AttackDB,
  type AttackFixture,
  attackFixture,
  leaksForeign,
} from './adversarial-fixture.js'

/*
 * Attacks on the tenancy around the queries (RLS mode: the runtime role, the
 * audited admin doors, the context, the middleware). Each asserts no foreign row
 * returned or changed, and the audit record where one is due.
 */

let fx: AttackFixture

beforeAll(async () => {
  fx = await attackFixture('adv_tenancy')
})
afterAll(() => fx?.close())
beforeEach(() => fx.reseed())

const rls = () => fx.modes[1]!
const db = () => rls().db

async function auditStatements(): Promise<{ reason: string; statement: string }[]> {
  const { rows } = await fx.tdb.pool.query(
    'select reason, statement from public.audit_log order by id',
  )
  return rows
}

describe('class 3: the audit record cannot be escaped', () => {
  it('a temp table named audit_log on the admin connection takes no rows, now or for later calls', async () => {
    const rows = await withoutTenant('temp shadow', () =>
      db()
        .connection()
        .execute(async (c) => {
          await sql`create temp table audit_log (like public.audit_log including all)`.execute(c)
          return c.selectFrom('accounts').selectAll().execute()
        }),
    )
    expect(rows).toHaveLength(4)
    // An innocent call later, possibly on the same pooled admin connection.
    await withoutTenant('innocent', () => db().selectFrom('accounts').select('id').execute())
    const audit = await auditStatements()
    expect(audit.map((a) => a.reason)).toEqual(['temp shadow', 'temp shadow', 'innocent'])
    expect(audit[1]!.statement).toBe('select * from "accounts"')
  })

  it('search_path pointing at another audit_log does not redirect the record', async () => {
    await fx.tdb.pool.query(
      'create schema if not exists evil; create table if not exists evil.audit_log (like public.audit_log)',
    )
    await withoutTenant('search path', () =>
      db()
        .connection()
        .execute(async (c) => {
          await sql`set search_path to evil, public`.execute(c)
          await c.selectFrom('accounts').selectAll().execute()
          await sql`reset search_path`.execute(c)
        }),
    )
    expect((await auditStatements()).map((a) => a.statement)).toContain('select * from "accounts"')
    const evil = await fx.tdb.pool.query('select count(*)::int as n from evil.audit_log')
    expect(evil.rows[0].n).toBe(0)
  })

  it('a raw begin ... rollback around reads does not undo their records (withoutTenant and allObjects)', async () => {
    const read = await withoutTenant('raw rollback', () =>
      db()
        .connection()
        .execute(async (c) => {
          await sql`begin`.execute(c)
          const rows = await c.selectFrom('accounts').selectAll().execute()
          await sql`rollback`.execute(c)
          return rows
        }),
    )
    expect(leaksForeign(read)).toBe(true) // a deliberate cross-tenant read...
    const admin = rls().tenancy!.allObjects<AttackDB>('admin raw rollback')
    await admin.connection().execute(async (c) => {
      await sql`begin`.execute(c)
      await c.selectFrom('transactions').selectAll().execute()
      await sql`rollback`.execute(c)
    })
    const audit = await auditStatements()
    // ...and its record survived the rollback (as did the allObjects one).
    expect(audit.filter((a) => a.statement.startsWith('select'))).toEqual([
      { reason: 'raw rollback', statement: 'select * from "accounts"' },
      { reason: 'admin raw rollback', statement: 'select * from "transactions"' },
    ])
  })

  it('when the audit write fails the rows are withheld', async () => {
    const broken = createTenancy({
      pool: new pg.Pool({ connectionString: fx.runtimeUrl, max: 1 }),
      adminPool: new pg.Pool({ connectionString: fx.tdb.url, max: 1 }),
      tables: ATTACK_TABLES,
      audit: { table: 'no_such_audit_log' },
    })
    try {
      await expect(
        withoutTenant('no log', () =>
          broken.kysely<AttackDB>().selectFrom('accounts').selectAll().execute(),
        ),
      ).rejects.toThrow(/installAuditLog/)
    } finally {
      await broken.destroy()
    }
  })
})

describe('class 8: the audited statement is recorded whole', () => {
  it("an alias like 'note--' does not cut the statement short", async () => {
    await withoutTenant('alias', () =>
      db()
        .selectFrom('accounts')
        .select('name as note--' as never)
        .where('id', '=', '1')
        .execute(),
    )
    expect((await auditStatements())[0]!.statement).toBe(
      'select "name" as "note--" from "accounts" where "id" = $1',
    )
  })

  it('the fingerprint ignores comments, literals and layout, and keeps quoted identifiers', () => {
    const a = statementFingerprint(
      `select 'note--' as a, "x--y" from t where id = 1 -- c\n and e = E'it\\'s'`,
    )
    expect(a.statement).toBe(`select ? as a, "x--y" from t where id = ? and e = ?`)
    const b = statementFingerprint(
      `SELECT /* other */ 'z' AS a,\n "x--y" FROM t WHERE id = 2 AND e = 'q'`,
    )
    expect(b.fingerprint).toBe(a.fingerprint)
    expect(statementFingerprint('select "X" from t').fingerprint).not.toBe(
      statementFingerprint('select "x" from t').fingerprint,
    )
  })
})

describe('class 4: handles die with their scope; no tenant switch inside a bound transaction', () => {
  it('a transaction opened inside withoutTenant is refused after the scope ends', async () => {
    const trx = (await withoutTenant('leak a trx', () =>
      db().startTransaction().execute(),
    )) as ControlledTransaction<AttackDB>
    try {
      await expect(
        runWithTenant('1', () => sql`select * from accounts`.execute(trx)),
      ).rejects.toThrow(UnsupportedQueryError)
      await expect(trx.selectFrom('currencies').selectAll().execute()).rejects.toThrow(/has ended/)
    } finally {
      await trx.rollback().execute()
    }
    expect((await auditStatements()).filter((a) => a.statement.includes('accounts'))).toEqual([])
  })

  it('work a withoutTenant scope left behind (a timer) no longer reads across tenants', async () => {
    let late: Promise<unknown> | undefined
    await withoutTenant('timer', async () => {
      setTimeout(() => {
        late = db()
          .selectFrom('accounts')
          .selectAll()
          .execute()
          .then(
            () => 'ran',
            (err: unknown) => err,
          )
      }, 20)
    })
    await sleep(60)
    expect(await late).toBeInstanceOf(MissingTenantError)
  })

  it('runWithTenant(2) inside a transaction bound to tenant 1 is refused (db.transaction and tenancy.transaction)', async () => {
    await expect(
      runWithTenant('1', () =>
        db()
          .transaction()
          .execute(async (trx) => {
            await trx.selectFrom('accounts').selectAll().execute()
            return runWithTenant('2', () => sql`select * from accounts`.execute(trx))
          }),
      ),
    ).rejects.toThrow(/bound to tenant "1".*tenant "2"/)
    await expect(
      runWithTenant('1', () =>
        rls().tenancy!.transaction<AttackDB, unknown>(async (trx) =>
          runWithTenant('2', () => trx.selectFrom('accounts').selectAll().execute()),
        ),
      ),
    ).rejects.toThrow(UnsupportedQueryError)
    await expect(
      runWithTenant('1', () =>
        db()
          .transaction()
          .execute((trx) =>
            withoutTenant('inside', () => trx.selectFrom('accounts').selectAll().execute()),
          ),
      ),
    ).rejects.toThrow(UnsupportedQueryError)
  })

  it('the same tenant inside its own transaction keeps working', async () => {
    const rows = await runWithTenant('1', () =>
      db()
        .transaction()
        .execute((trx) =>
          runWithTenant('1', () => trx.selectFrom('accounts').selectAll().execute()),
        ),
    )
    expect(rows).toHaveLength(2)
  })
})

describe('class 5: the runtime role check walks the whole role graph', () => {
  it('a NOINHERIT member of the owner, or of a BYPASSRLS role, is refused at start-up and by the doctor', async () => {
    const owner = `${fx.role}_own`
    const bypass = `${fx.role}_byp`
    const member = `${fx.role}_mem`
    await fx.tdb.pool.query(`create role "${owner}" nologin; create role "${bypass}" nologin bypassrls;
      create role "${member}" login password 'm' noinherit;
      create table owned_elsewhere (tenant_id bigint not null, x int);
      alter table owned_elsewhere owner to "${owner}";
      grant "${owner}" to "${member}"; grant "${bypass}" to "${member}"`)
    try {
      const url = new URL(fx.tdb.url)
      url.username = member
      url.password = 'm'
      const tenancy = createTenancy({
        pool: new pg.Pool({ connectionString: url.toString(), max: 1 }),
        adminPool: new pg.Pool({ connectionString: fx.tdb.url, max: 1 }),
        tables: ATTACK_TABLES,
        audit: { table: false },
      })
      try {
        const err = await runWithTenant('1', () =>
          tenancy.kysely<AttackDB>().selectFrom('currencies').selectAll().execute(),
        ).catch((e: unknown) => e)
        expect(err).toBeInstanceOf(UnsafeRoleError)
        expect(String((err as Error).message)).toMatch(/member of a BYPASSRLS role/)
        expect(String((err as Error).message)).toMatch(
          /owns tenant-aware tables \(public\.owned_elsewhere\)/,
        )
      } finally {
        await tenancy.destroy()
      }
      const report = await runDoctor(fx.tdb.pool, { runtimeRole: member })
      const codes = report.findings
        .filter((f) => f.object.startsWith(`role ${member}`))
        .map((f) => f.code)
      expect(codes).toEqual(expect.arrayContaining(['ROLE_MEMBER_OF_UNSAFE', 'ROLE_OWNS_TABLE']))
    } finally {
      await fx.tdb.pool.query(
        `drop table owned_elsewhere; drop role "${member}"; drop role "${owner}"; drop role "${bypass}"`,
      )
    }
  })
})

describe('surprise: temporary tables', () => {
  it('the runtime role made by grantRuntimeRole cannot create a temp table; doctor reports one that can', async () => {
    const runtime = new pg.Client({ connectionString: fx.runtimeUrl })
    await runtime.connect()
    try {
      await expect(
        runtime.query('create temp table accounts (tenant_id bigint, id bigint)'),
      ).rejects.toMatchObject({
        code: '42501',
      })
    } finally {
      await runtime.end()
    }
    const clean = await runDoctor(fx.tdb.pool, { runtimeRole: fx.role })
    expect(clean.findings.map((f) => f.code)).not.toContain('ROLE_CAN_CREATE_TEMP')
    await fx.tdb.pool.query(`grant temporary on database "${fx.tdb.name}" to "${fx.role}"`)
    try {
      const report = await runDoctor(fx.tdb.pool, { runtimeRole: fx.role })
      expect(report.findings.find((f) => f.code === 'ROLE_CAN_CREATE_TEMP')?.severity).toBe(
        'warning',
      )
    } finally {
      await fx.tdb.pool.query(`revoke temporary on database "${fx.tdb.name}" from "${fx.role}"`)
    }
  })
})

describe('surprise: a schema the runtime role may create in', () => {
  it("a table there shadows the real one for later connections and takes another tenant's rows; doctor reports the schema", async () => {
    const clean = await runDoctor(fx.tdb.pool, { runtimeRole: fx.role })
    expect(clean.findings.map((f) => f.code)).not.toContain('ROLE_CAN_CREATE_IN_SCHEMA')
    await fx.tdb.pool.query(
      `create schema shadow; grant usage, create on schema shadow to "${fx.role}"`,
    )
    const attacker = new pg.Client({ connectionString: fx.runtimeUrl })
    await attacker.connect()
    const laterPool = new pg.Pool({ connectionString: fx.runtimeUrl, max: 1 })
    const later = createTenancy({
      pool: laterPool,
      adminPool: new pg.Pool({ connectionString: fx.tdb.url, max: 1 }),
      tables: ATTACK_TABLES,
      audit: { table: 'audit_log' },
    })
    try {
      // An application already running: its pool passed the start-up role check.
      await runWithTenant('2', () =>
        later.kysely<AttackDB>().selectFrom('accounts').selectAll().execute(),
      )
      await attacker.query(`create table shadow.accounts (like public.accounts);
        alter role current_user set search_path = shadow, public`)
      // Its connection is replaced later (a restart of the server, an idle timeout).
      const { rows: idle } = await laterPool.query('select pg_backend_pid() as pid')
      await fx.tdb.pool.query('select pg_terminate_backend($1)', [idle[0].pid])
      // The pool hears of it when the backend's FATAL arrives, not when the call returns: until
      // then it would hand out the dead connection. Wait for it to let go (no fixed sleep).
      for (const deadline = Date.now() + 30_000; laterPool.totalCount > 0; await sleep(5))
        if (Date.now() > deadline) throw new Error('the pool kept its terminated connection')
      await runWithTenant('2', () =>
        later
          .kysely<AttackDB>()
          .insertInto('accounts')
          .values({ id: '77', name: 'secret-2' })
          .execute(),
      )
      const { rows } = await attacker.query('select tenant_id, name from shadow.accounts')
      expect(rows).toEqual([{ tenant_id: '2', name: 'secret-2' }])
      const report = await runDoctor(fx.tdb.pool, { runtimeRole: fx.role })
      expect(report.findings.find((f) => f.code === 'ROLE_CAN_CREATE_IN_SCHEMA')?.object).toBe(
        `role ${fx.role} -> schema shadow`,
      )
    } finally {
      await attacker.query('alter role current_user reset search_path').catch(() => {})
      await attacker.end()
      await later.destroy()
      await fx.tdb.pool.query('drop schema shadow cascade')
    }
  })
})

describe('surprise: privileges row level security does not govern', () => {
  it("TRUNCATE granted on a tenant table empties tenant 2's rows from tenant 1; doctor reports it", async () => {
    const clean = await runDoctor(fx.tdb.pool, { runtimeRole: fx.role })
    expect(clean.findings.map((f) => f.code)).not.toContain('ROLE_TABLE_PRIVILEGE')
    await fx.tdb.pool.query(`grant truncate on handles to "${fx.role}"`)
    try {
      await runWithTenant('1', () => sql`truncate handles`.execute(db()))
      const { rows } = await fx.tdb.pool.query(
        'select count(*)::int as n from handles where tenant_id = 2',
      )
      expect(rows[0].n).toBe(0)
      const report = await runDoctor(fx.tdb.pool, { runtimeRole: fx.role })
      expect(
        report.findings.filter((f) => f.code === 'ROLE_TABLE_PRIVILEGE').map((f) => f.object),
      ).toEqual([`role ${fx.role} -> public.handles`])
    } finally {
      await fx.tdb.pool.query(`revoke truncate on handles from "${fx.role}"`)
    }
  })
})

describe('class 6: setCurrentTenant never switches siblings or callers', () => {
  it('is refused inside runWithTenant / withoutTenant; a sibling branch keeps its tenant', async () => {
    const seen: unknown[] = []
    await runWithTenant('1', async () => {
      const results = await Promise.allSettled([
        (async () => {
          await sleep(1)
          setCurrentTenant('2')
        })(),
        (async () => {
          await sleep(5)
          seen.push(currentTenant())
        })(),
      ])
      expect(results[0]).toMatchObject({
        status: 'rejected',
        reason: expect.any(InvalidInputError),
      })
      seen.push(currentTenant())
    })
    expect(seen).toEqual(['1', '1'])
    expect(() => withoutTenant('x', () => setCurrentTenant('2'))).toThrow(InvalidInputError)
  })

  it('is allowed at the top level of a script', async () => {
    await new Promise<void>((resolve, reject) => {
      setImmediate(() => {
        try {
          setCurrentTenant('2')
          expect(currentTenant()).toBe('2')
          resolve()
        } catch (err) {
          reject(err)
        }
      })
    })
  })
})

describe('classes 7 and 10: the middleware', () => {
  let store: TenantStore
  beforeAll(async () => {
    await installTenantTables(fx.tdb.pool, { idType: 'bigint' })
    await fx.tdb.pool.query(
      `insert into tenants (id, slug, name) values (1, 'one', 'One'), (2, 'two', 'Two') on conflict do nothing`,
    )
    store = new TenantStore({ db: fx.tdb.pool })
  })

  const request = (path: string, headers: Record<string, string>) => ({
    method: 'GET',
    path,
    url: path,
    header: (name: string) => headers[name.toLowerCase()],
    raw: undefined,
  })

  it('a signed-in user whose memberships() is null is never anonymous', async () => {
    const resolve = createTenantResolution({ store, memberships: () => null })
    const outcome = await resolve(request('/notes', { 'x-tenant-id': '2' }))
    expect(outcome).toMatchObject({ kind: 'refused', error: { code: 'TENANT_FORBIDDEN' } })
    const withAuth = createTenantResolution({
      store,
      authenticated: (req) => req.header('authorization') !== undefined,
      memberships: () => undefined,
    })
    expect(
      await withAuth(request('/notes', { 'x-tenant-id': '2', authorization: 'Bearer u' })),
    ).toMatchObject({
      kind: 'refused',
      error: { code: 'TENANT_FORBIDDEN' },
    })
    // A truly anonymous request (no authorization) keeps the documented 'allow' default.
    expect(await withAuth(request('/notes', { 'x-tenant-id': '2' }))).toMatchObject({
      kind: 'tenant',
    })
  })

  it('a path prefix in another case still names a tenant that must agree (Express routes ignore case)', async () => {
    const resolve = createTenantResolution({ store, resolvers: [fromHeader(), fromPath()] })
    expect(await resolve(request('/T/two/notes', { 'x-tenant-id': '1' }))).toMatchObject({
      kind: 'refused',
      error: { code: 'TENANT_FORBIDDEN' },
    })
    expect(await resolve(request('/T/one/notes', { 'x-tenant-id': '1' }))).toMatchObject({
      kind: 'tenant',
    })
    const exact = createTenantResolution({
      store,
      resolvers: [fromHeader(), fromPath({ caseSensitive: true })],
    })
    expect(await exact(request('/T/two/notes', { 'x-tenant-id': '1' }))).toMatchObject({
      kind: 'tenant',
    })
  })
})
