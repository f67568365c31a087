import fc from 'fast-check'
import {
  type Kysely,
  Kysely as KyselyClass,
  PostgresDialect,
  type SelectQueryBuilder,
  sql,
} from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTenancy, runWithTenant, type Tenancy } from '../src/entries/index.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'
import { createFinanceTables, createRuntimeRole, seedFinance, TABLES } from './kysely-fixture.js'

/*
 * Property: a scoped query over both tenants' data returns exactly what the same
 * query, unscoped, returns over a copy of the database that holds only the
 * current tenant's rows ("as if the other tenant did not exist"). That covers
 * "no row of the other tenant" and "LEFT/RIGHT/FULL joins keep their meaning".
 * Writes: the other tenant's rows are never touched, and the current tenant's
 * rows end up as the same write leaves the single-tenant copy.
 */

type Table = 'accounts' | 'transactions' | 'currencies'
type JoinKind = 'inner' | 'left' | 'right' | 'full' | 'cross'
type Where = 'none' | 'or' | 'sub' | 'exists'

interface SelectSpec {
  base: Table
  cte: boolean
  joins: { kind: JoinKind; table: Table }[]
  where: Where
}

type WriteSpec =
  | { op: 'update'; table: 'accounts' | 'transactions'; where: Where; from: boolean }
  | { op: 'delete'; table: 'accounts' | 'transactions'; where: Where; using: boolean }
  | { op: 'upsert'; id: number }
  | { op: 'insertSelect'; where: Where }

const SEED = 20260127
const table = fc.constantFrom<Table>('accounts', 'transactions', 'currencies')
const tenantTable = fc.constantFrom<'accounts' | 'transactions'>('accounts', 'transactions')
const where = fc.constantFrom<Where>('none', 'or', 'sub', 'exists')
const selectSpec: fc.Arbitrary<SelectSpec> = fc.record({
  base: table,
  cte: fc.boolean(),
  joins: fc.array(
    fc.record({
      kind: fc.constantFrom<JoinKind>('inner', 'left', 'right', 'full', 'cross'),
      table,
    }),
    { maxLength: 3 },
  ),
  where,
})
const writeSpec: fc.Arbitrary<WriteSpec> = fc.oneof(
  fc.record({ op: fc.constant('update' as const), table: tenantTable, where, from: fc.boolean() }),
  fc.record({ op: fc.constant('delete' as const), table: tenantTable, where, using: fc.boolean() }),
  fc.record({ op: fc.constant('upsert' as const), id: fc.integer({ min: 1, max: 4 }) }),
  fc.record({ op: fc.constant('insertSelect' as const), where }),
)
const tenant = fc.constantFrom('1', '2')

// Queries are built untyped: the grammar, not the types, is under test.
type AnyDB = Kysely<any>

function key(t: Table): string {
  return t === 'currencies' ? 'code' : 'id'
}

function joinOn(left: { table: Table; alias: string }, right: { table: Table; alias: string }) {
  const l = left.alias
  const r = right.alias
  if (left.table === 'currencies' || right.table === 'currencies') {
    const other = left.table === 'currencies' ? right : left
    const cur = left.table === 'currencies' ? left : right
    if (other.table === 'accounts')
      return sql`${sql.ref(`${cur.alias}.code`)} = ${sql.ref(`${other.alias}.currency`)}`
    if (other.table === 'currencies') return sql`${sql.ref(`${l}.code`)} = ${sql.ref(`${r}.code`)}`
    // An equality between both sides, so FULL JOIN can hash it.
    return sql`${sql.ref(`${cur.alias}.code`)} = (case when ${sql.ref(`${other.alias}.amount`)} > 50 then 'USD' else 'EUR' end)`
  }
  if (left.table === right.table) {
    const col = left.table === 'accounts' ? 'id' : 'account_id'
    return sql`${sql.ref(`${l}.${col}`)} = ${sql.ref(`${r}.${col}`)}`
  }
  const acc = left.table === 'accounts' ? l : r
  const trx = left.table === 'accounts' ? r : l
  return sql`${sql.ref(`${trx}.account_id`)} = ${sql.ref(`${acc}.id`)}`
}

function applyWhere<Q extends { where: any }>(q: Q, w: Where, alias: string, t: Table): Q {
  const col = `${alias}.${key(t)}`
  switch (w) {
    case 'none':
      return q
    case 'or':
      return t === 'currencies'
        ? q.where((eb: any) => eb.or([eb(col, '=', 'EUR'), eb(col, '=', 'GBP')]))
        : q.where((eb: any) => eb.or([eb(col, '=', '1'), eb(col, '=', '3')]))
    case 'sub':
      return t === 'currencies'
        ? q.where(col, 'in', (eb: any) => eb.selectFrom('accounts').select('currency'))
        : q.where(col, 'in', (eb: any) => eb.selectFrom('transactions').select('account_id'))
    case 'exists':
      return q.where((eb: any) =>
        eb.exists(eb.selectFrom('accounts as ex').select('ex.id').where('ex.id', '=', '1')),
      )
  }
}

function buildSelect(db: AnyDB, spec: SelectSpec): SelectQueryBuilder<any, any, any> {
  const sources = [
    { table: spec.base, alias: 'x0' },
    ...spec.joins.map((j, i) => ({ table: j.table, alias: `x${i + 1}` })),
  ]
  let q: any = spec.cte
    ? db.with('src', (qc: any) => qc.selectFrom(spec.base).selectAll()).selectFrom('src as x0')
    : db.selectFrom(`${spec.base} as x0`)
  spec.joins.forEach((j, i) => {
    const right = sources[i + 1]!
    const left = sources[i]!
    const target = `${right.table} as ${right.alias}`
    if (j.kind === 'cross') q = q.crossJoin(target)
    else {
      const method = { inner: 'innerJoin', left: 'leftJoin', right: 'rightJoin', full: 'fullJoin' }[
        j.kind
      ]
      q = q[method](target, (jb: any) => jb.on(joinOn(left, right)))
    }
  })
  const selections = sources.flatMap((s): any[] =>
    s.table === 'currencies'
      ? [sql`${sql.ref(`${s.alias}.code`)}`.as(`${s.alias}_code`)]
      : [
          sql`${sql.ref(`${s.alias}.tenant_id`)}::text`.as(`${s.alias}_t`),
          sql`${sql.ref(`${s.alias}.id`)}::text`.as(`${s.alias}_id`),
        ],
  )
  q = q.select(selections)
  return applyWhere(q, spec.where, 'x0', spec.base)
}

function buildWrite(db: AnyDB, spec: WriteSpec): { execute(): Promise<unknown> } {
  switch (spec.op) {
    case 'update': {
      let q: any = db.updateTable(`${spec.table} as w`)
      q =
        spec.table === 'accounts'
          ? q.set({ name: sql`w.name || '!'` })
          : q.set({ amount: sql`w.amount + 1` })
      if (spec.from)
        q = q
          .from('accounts as f')
          .whereRef('f.id', '=', spec.table === 'accounts' ? 'w.id' : 'w.account_id')
      return applyWhere(q, spec.where, 'w', spec.table)
    }
    case 'delete': {
      if (spec.table === 'accounts') {
        // accounts are referenced by transactions: delete both, child first, in one statement.
        let q: any = db
          .with('gone', (qc: any) => {
            const d: any = qc
              .deleteFrom('transactions')
              .where('account_id', 'in', (eb: any) =>
                applyWhere(
                  eb.selectFrom('accounts as w').select('w.id'),
                  spec.where,
                  'w',
                  'accounts',
                ),
              )
            return d.returning('account_id')
          })
          .deleteFrom('accounts as w')
        q = applyWhere(q, spec.where, 'w', 'accounts')
        return q
      }
      let q: any = db.deleteFrom('transactions as w')
      if (spec.using) q = q.using('accounts as u').whereRef('u.id', '=', 'w.account_id')
      return applyWhere(q, spec.where, 'w', 'transactions')
    }
    case 'upsert':
      return db
        .insertInto('accounts')
        .values({ id: String(spec.id), name: 'upserted' })
        .onConflict((oc: any) =>
          oc
            .columns(['tenant_id', 'id'])
            .doUpdateSet({ name: (eb: any) => eb.ref('excluded.name') }),
        )
    case 'insertSelect':
      return db
        .insertInto('transactions')
        .columns(['id', 'account_id', 'amount'])
        .expression(
          applyWhere(
            (db as any)
              .selectFrom('accounts as w')
              .select([sql`w.id + 1000`.as('id'), 'w.id as account_id', sql`7`.as('amount')]),
            spec.where,
            'w',
            'accounts',
          ),
        )
  }
}

function sorted(rows: unknown[]): string[] {
  return rows.map((r) => JSON.stringify(r)).sort()
}

let tdb: TestDatabase
let role: Awaited<ReturnType<typeof createRuntimeRole>> | undefined
let tenancy: Tenancy
let scoped: AnyDB
const oracles = new Map<string, AnyDB>()

beforeAll(async () => {
  tdb = await createTestDatabase('kysely_prop')
  await createFinanceTables(tdb.pool)
  await seedFinance(tdb.pool)
  for (const t of ['1', '2']) {
    const s = `only${t}`
    await tdb.pool.query(`create schema ${s}`)
    await tdb.pool.query(`create table ${s}.currencies as select * from public.currencies`)
    for (const name of ['accounts', 'transactions']) {
      await tdb.pool.query(`create table ${s}.${name} (like public.${name} including defaults)`)
      await tdb.pool.query(`alter table ${s}.${name} alter column tenant_id set default ${t}`)
      await tdb.pool.query(
        `insert into ${s}.${name} select * from public.${name} where tenant_id = ${t}`,
      )
    }
    await tdb.pool.query(`alter table ${s}.accounts add primary key (tenant_id, id)`)
    const pool = new pg.Pool({ connectionString: tdb.url, max: 2, options: `-c search_path=${s}` })
    oracles.set(t, new KyselyClass<any>({ dialect: new PostgresDialect({ pool }) }))
  }
  role = await createRuntimeRole(tdb.pool, tdb.url, 'prop')
  tenancy = createTenancy({
    pool: new pg.Pool({ connectionString: role.url, max: 4 }),
    adminPool: new pg.Pool({ connectionString: tdb.url, max: 2 }),
    tables: TABLES,
    audit: { table: false },
  })
  scoped = tenancy.kysely<any>()
})

afterAll(async () => {
  await tenancy?.destroy()
  for (const db of oracles.values()) await db.destroy()
  await role?.drop()
  await tdb?.drop()
})

class Rollback extends Error {}

/** Runs `fn` in a transaction and rolls it back, returning what `fn` returned. */
async function rolledBack<T>(db: AnyDB, fn: (trx: AnyDB) => Promise<T>): Promise<T> {
  let out: T | undefined
  await db
    .transaction()
    .execute(async (trx) => {
      out = await fn(trx)
      throw new Rollback()
    })
    .catch((err) => {
      if (!(err instanceof Rollback)) throw err
    })
  return out as T
}

const snapshot = (db: AnyDB, where: string) =>
  sql<{ r: string }>`select row_to_json(x)::text as r from (
      select 'a' as k, tenant_id, id, name, null::numeric as amount from accounts ${sql.raw(where)}
      union all select 't', tenant_id, id, null, amount from transactions ${sql.raw(where)}
    ) x`
    .execute(db)
    .then((r) => r.rows.map((row) => row.r).sort())

describe('TenantPlugin property: scoped = unscoped over a single-tenant copy', () => {
  it("random SELECTs (joins of every kind, aliases, CTEs, subqueries) return only the current tenant's rows", async () => {
    await fc.assert(
      fc.asyncProperty(selectSpec, tenant, async (spec, t) => {
        const got = await runWithTenant(t, () => buildSelect(scoped, spec).execute())
        const want = await buildSelect(oracles.get(t)!, spec).execute()
        expect(sorted(got)).toEqual(sorted(want))
        for (const row of got) {
          for (const [k, v] of Object.entries(row as object)) {
            if (k.endsWith('_t') && v !== null) expect(v).toBe(t)
          }
        }
      }),
      { seed: SEED, numRuns: 120 },
    )
  })

  it("random UNION / INTERSECT / EXCEPT of filtered selects return only the current tenant's rows", async () => {
    const arm = fc.record({ table, where })
    const op = fc.constantFrom('union', 'unionAll', 'intersect', 'except')
    await fc.assert(
      fc.asyncProperty(
        arm,
        fc.array(fc.tuple(op, arm), { minLength: 1, maxLength: 2 }),
        tenant,
        async (first, rest, t) => {
          const build = (db: AnyDB) => {
            const one = (a: { table: Table; where: Where }) =>
              applyWhere(
                (db as any)
                  .selectFrom(`${a.table} as x0`)
                  .select([
                    sql`${sql.ref(`x0.${key(a.table)}`)}::text`.as('k'),
                    a.table === 'currencies'
                      ? sql<string>`null::text`.as('t')
                      : sql`x0.tenant_id::text`.as('t'),
                  ]),
                a.where,
                'x0',
                a.table,
              )
            let q: any = one(first)
            for (const [o, a] of rest) q = q[o](one(a))
            return q
          }
          const got = await runWithTenant(t, () => build(scoped).execute())
          const want = await build(oracles.get(t)!).execute()
          expect(sorted(got)).toEqual(sorted(want))
        },
      ),
      { seed: SEED, numRuns: 60 },
    )
  })

  it('random UPDATE / DELETE / upsert / INSERT ... SELECT never touch the other tenant', async () => {
    await fc.assert(
      fc.asyncProperty(writeSpec, tenant, async (spec, t) => {
        const other = t === '1' ? '2' : '1'
        const result = await runWithTenant(t, () =>
          rolledBack(scoped, async (trx) => {
            const otherBefore = await snapshot(trx, `where tenant_id = ${other}`)
            await buildWrite(trx, spec).execute()
            const otherAfter = await snapshot(trx, `where tenant_id = ${other}`)
            const mine = await snapshot(trx, `where tenant_id = ${t}`)
            return { otherBefore, otherAfter, mine }
          }),
        )
        expect(result.otherAfter).toEqual(result.otherBefore)
        const oracle = await rolledBack(oracles.get(t)!, async (trx) => {
          await buildWrite(trx, spec).execute()
          return snapshot(trx, '')
        })
        expect(result.mine).toEqual(oracle)
      }),
      { seed: SEED, numRuns: 60 },
    )
  })
})
