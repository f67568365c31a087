import { setImmediate as immediate, setTimeout as sleep } from 'node:timers/promises'
import { type Generated, type Kysely, sql } from 'kysely'
import type pg from 'pg'
import { currentTenant, runWithTenant, withoutTenant } from '../../src/context/index.js'
import type { BindingMode } from '../../src/db/binding.js'
import { withTenantClient } from '../../src/entries/pg.js'
import type { Tenancy } from '../../src/tenancy/create-tenancy.js'
import { runAttack } from './attacks.js'

/** The fuzzer's two tenant-aware tables; ids overlap across tenants on purpose. */
export interface FuzzDB {
  wallets: { tenant_id: Generated<string>; id: string; name: string; balance: Generated<number> }
  payments: {
    tenant_id: Generated<string>
    id: string
    wallet_id: string
    amount: number
    note: string
  }
}

/** DDL of the fuzz tables (run as the owner; RLS is enabled afterwards). */
export const FUZZ_DDL = `
create table wallets (
  tenant_id bigint not null references tenants (id),
  id bigint not null,
  name text not null,
  balance int not null default 0,
  primary key (tenant_id, id)
);
create table payments (
  tenant_id bigint not null references tenants (id),
  id bigint not null,
  wallet_id bigint not null,
  amount int not null,
  note text not null,
  primary key (tenant_id, id),
  foreign key (tenant_id, wallet_id) references wallets (tenant_id, id) on delete cascade
);`

/** A wallet as a read returns it, with the tenant bound in the transaction that read it. */
export interface WalletRow {
  tenant_id: string
  id: string
  name: string
  balance: number
  bound: string | null
}

/** A payment joined to its wallet. */
export interface JoinRow {
  p_tenant: string
  w_tenant: string
  id: string
  wallet_id: string
  note: string
  name: string
  bound: string | null
}

/** What a cross-tenant probe managed to see or change (all must be 0 / true). */
export interface ProbeResult {
  visible: number
  changed: number
  insertRefused: boolean
}

/** One database call of an operation, JSON-serialisable so it can travel over HTTP. */
export type Call =
  | { m: 'list'; variant: number; jitter: number }
  | { m: 'insert'; id: number; name: string; jitter: number }
  | { m: 'upsert'; id: number; name: string; jitter: number }
  | { m: 'update'; id: number; name: string; delta: number; jitter: number }
  | { m: 'remove'; id: number; jitter: number }
  | { m: 'pay'; id: number; walletId: number; amount: number; note: string; jitter: number }
  | { m: 'join'; raw: boolean; jitter: number }
  | { m: 'probe'; victim: string; raw: boolean; jitter: number }
  | { m: 'failAfterWrite'; id: number; name: string; walletId: number | null; jitter: number }
  | { m: 'admin'; jitter: number }
  | { m: 'nested'; victim: string; jitter: number }
  | { m: 'attack'; variant: number; victim: string; jitter: number }

/** How a call reaches the database. */
export type Via = 'kysely' | 'trx' | 'pg'

/** The marker of an injected failure after a write (the transaction must roll back). */
export class InjectedFailure extends Error {
  constructor() {
    super('injected failure after a write')
    this.name = 'InjectedFailure'
  }
}

/** Yields to the event loop in one of four ways, so async contexts interleave. */
export async function pause(jitter: number): Promise<void> {
  if (jitter === 1) await Promise.resolve()
  else if (jitter === 2) await immediate()
  else if (jitter >= 3) await sleep(jitter - 2)
}

/** What the executors need: the tenancy (scoped Kysely) and the runtime pool for raw SQL. */
export interface FuzzEnv {
  readonly tenancy: Tenancy
  readonly pool: pg.Pool
  /** How `withTenantClient` binds the tenant (the tenancy is created with the same). */
  readonly binding: BindingMode
  /**
   * Citus: raw SQL relies on RLS alone, has no tenant predicate to route by, and
   * is allowed to ask every shard (scoped Kysely stays under the fan-out error).
   */
  readonly rawFansOut?: boolean | undefined
}

const BOUND = sql<string | null>`current_setting('rowtenancy.tenant_id', true)`

/** Runs one call through scoped Kysely: `db` is `tenancy.kysely()` or a transaction of it. */
async function viaKysely(db: Kysely<FuzzDB>, call: Call, route = false): Promise<unknown> {
  switch (call.m) {
    case 'list': {
      await pause(call.jitter)
      let q = db
        .selectFrom('wallets')
        .select(['tenant_id', 'id', 'name', 'balance', BOUND.as('bound')])
      if (call.variant === 1) {
        q = q.where(({ exists, selectFrom }) =>
          exists(
            selectFrom('payments')
              .select('payments.id')
              .whereRef('payments.wallet_id', '=', 'wallets.id'),
          ),
        )
      } else if (call.variant === 2) {
        q = q.where('id', 'in', db.selectFrom('payments').select('wallet_id'))
      }
      return q.orderBy('id').execute()
    }
    case 'insert': {
      const r = await db
        .insertInto('wallets')
        .values({ id: String(call.id), name: call.name })
        .executeTakeFirst()
      await pause(call.jitter)
      return Number(r.numInsertedOrUpdatedRows ?? 0n)
    }
    case 'upsert': {
      const r = await db
        .insertInto('wallets')
        .values({ id: String(call.id), name: call.name, balance: 0 })
        .onConflict((oc) =>
          oc.columns(['tenant_id', 'id']).doUpdateSet({
            name: (eb) => eb.ref('excluded.name'),
            balance: sql<number>`wallets.balance + 1`,
          }),
        )
        .executeTakeFirst()
      return Number(r.numInsertedOrUpdatedRows ?? 0n)
    }
    case 'update': {
      await pause(call.jitter)
      const r = await db
        .updateTable('wallets')
        .set({ name: call.name, balance: sql<number>`balance + ${call.delta}` })
        .where('id', '=', String(call.id))
        .executeTakeFirst()
      return Number(r.numUpdatedRows)
    }
    case 'remove': {
      const r = await db.deleteFrom('wallets').where('id', '=', String(call.id)).executeTakeFirst()
      return Number(r.numDeletedRows)
    }
    case 'pay': {
      await pause(call.jitter)
      const r = await db
        .insertInto('payments')
        .values({
          id: String(call.id),
          wallet_id: String(call.walletId),
          amount: call.amount,
          note: call.note,
        })
        .executeTakeFirst()
      return Number(r.numInsertedOrUpdatedRows ?? 0n)
    }
    case 'join': {
      if (call.raw) {
        // Raw SQL through the scoped instance: no tenant predicate at all, RLS alone filters.
        // On Citus (`route`) raw SQL must name the tenant to reach one shard: with none,
        // it would ask every shard, which the suite makes an error for the runtime role.
        const routed = route ? sql`where p.tenant_id = ${String(currentTenant())}` : sql``
        const r = await sql<JoinRow>`select p.tenant_id as p_tenant, w.tenant_id as w_tenant, p.id,
            p.wallet_id, p.note, w.name, ${BOUND} as bound
          from payments p join wallets w on w.tenant_id = p.tenant_id and w.id = p.wallet_id
          ${routed} order by p.id`.execute(db)
        return r.rows
      }
      await pause(call.jitter)
      return db
        .selectFrom('payments as p')
        .innerJoin('wallets as w', 'w.id', 'p.wallet_id')
        .select([
          'p.tenant_id as p_tenant',
          'w.tenant_id as w_tenant',
          'p.id',
          'p.wallet_id',
          'p.note',
          'w.name',
          BOUND.as('bound'),
        ])
        .orderBy('p.id')
        .execute()
    }
    case 'probe': {
      const victim = call.victim
      const seen = await db
        .selectFrom('wallets')
        .select((eb) => eb.fn.countAll<string>().as('n'))
        .where('tenant_id', '=', victim)
        .executeTakeFirstOrThrow()
      // raw SQL (RLS alone filters it) or, on a role without RLS, a builder subquery (the plugin alone)
      const raw = call.raw
        ? await sql<{
            n: string
          }>`select count(*) as n from payments where tenant_id = ${victim}`.execute(db)
        : {
            rows: [
              await db
                .selectFrom('payments')
                .select((eb) => eb.fn.countAll<string>().as('n'))
                .where(
                  'wallet_id',
                  'in',
                  db.selectFrom('wallets').select('id').where('tenant_id', '=', victim),
                )
                .executeTakeFirstOrThrow(),
            ],
          }
      await pause(call.jitter)
      const upd = await db
        .updateTable('wallets')
        .set({ name: 'pwned' })
        .where('tenant_id', '=', victim)
        .executeTakeFirst()
      const del = await db.deleteFrom('payments').where('tenant_id', '=', victim).executeTakeFirst()
      let insertRefused = false
      try {
        await db
          .insertInto('wallets')
          .values({ tenant_id: victim, id: '999999', name: 'pwned' })
          .execute()
      } catch (err) {
        insertRefused = (err as { code?: string }).code === 'CROSS_TENANT_WRITE'
        if (!insertRefused) throw err
      }
      return {
        visible: Number(seen.n) + Number(raw.rows[0]?.n ?? 0),
        changed: Number(upd.numUpdatedRows) + Number(del.numDeletedRows),
        insertRefused,
      } satisfies ProbeResult
    }
    case 'failAfterWrite':
      throw new Error('failAfterWrite runs in a transaction (trx or pg), not on the plain instance')
    default:
      throw new Error(`executeCall handles ${call.m}`)
  }
}

/** Runs one call as raw SQL on a client bound by `withTenantClient` (RLS alone filters). */
async function viaPg(c: pg.PoolClient, call: Call): Promise<unknown> {
  switch (call.m) {
    case 'list': {
      await pause(call.jitter)
      const where =
        call.variant === 1
          ? 'where exists (select 1 from payments p where p.wallet_id = w.id)'
          : call.variant === 2
            ? 'where w.id in (select wallet_id from payments)'
            : ''
      const r = await c.query(
        `with w as (select * from wallets) select w.tenant_id, w.id, w.name, w.balance,
           current_setting('rowtenancy.tenant_id', true) as bound from w ${where} order by w.id`,
      )
      return r.rows
    }
    case 'insert': {
      // The tenant comes from the bound setting, the way a raw-SQL app would write it.
      const r = await c.query(
        `insert into wallets (tenant_id, id, name)
         values (current_setting('rowtenancy.tenant_id')::bigint, $1, $2)`,
        [call.id, call.name],
      )
      await pause(call.jitter)
      return r.rowCount
    }
    case 'upsert': {
      // The tenant comes from the async context (it must have followed the request here).
      const r = await c.query(
        `insert into wallets (tenant_id, id, name, balance) values ($3, $1, $2, 0)
         on conflict (tenant_id, id) do update set name = excluded.name, balance = wallets.balance + 1`,
        [call.id, call.name, String(currentTenant())],
      )
      return r.rowCount
    }
    case 'update': {
      await pause(call.jitter)
      const r = await c.query(
        'update wallets set name = $2, balance = balance + $3 where id = $1',
        [call.id, call.name, call.delta],
      )
      return r.rowCount
    }
    case 'remove':
      return (await c.query('delete from wallets where id = $1', [call.id])).rowCount
    case 'pay': {
      await pause(call.jitter)
      const r = await c.query(
        `insert into payments (tenant_id, id, wallet_id, amount, note)
         values (current_setting('rowtenancy.tenant_id')::bigint, $1, $2, $3, $4)`,
        [call.id, call.walletId, call.amount, call.note],
      )
      return r.rowCount
    }
    case 'join': {
      const r = await c.query(
        `select p.tenant_id as p_tenant, w.tenant_id as w_tenant, p.id, p.wallet_id, p.note, w.name,
                current_setting('rowtenancy.tenant_id', true) as bound
           from payments p join wallets w on w.tenant_id = p.tenant_id and w.id = p.wallet_id order by p.id`,
      )
      await pause(call.jitter)
      return r.rows
    }
    case 'probe': {
      const v = call.victim
      const seen = await c.query(
        `select (select count(*) from wallets where tenant_id = $1)
              + (select count(*) from payments where tenant_id = $1) as n`,
        [v],
      )
      await pause(call.jitter)
      const upd = await c.query(`update wallets set name = 'pwned' where tenant_id = $1`, [v])
      const del = await c.query('delete from payments where tenant_id = $1', [v])
      await c.query('savepoint probe')
      let insertRefused = false
      try {
        await c.query(`insert into wallets (tenant_id, id, name) values ($1, 999999, 'pwned')`, [v])
      } catch (err) {
        insertRefused = (err as { code?: string }).code === '42501'
        if (!insertRefused) throw err
      }
      await c.query('rollback to savepoint probe')
      return {
        visible: Number(seen.rows[0].n),
        changed: (upd.rowCount ?? 0) + (del.rowCount ?? 0),
        insertRefused,
      } satisfies ProbeResult
    }
    case 'failAfterWrite': {
      await c.query(
        `insert into wallets (tenant_id, id, name) values (current_setting('rowtenancy.tenant_id')::bigint, $1, $2)`,
        [call.id, call.name],
      )
      if (call.walletId !== null)
        await c.query('update wallets set balance = balance + 1000 where id = $1', [call.walletId])
      await pause(call.jitter)
      throw new InjectedFailure()
    }
    default:
      throw new Error(`executeCall handles ${call.m}`)
  }
}

/**
 * Runs one call for the tenant in the async context (`runWithTenant` or the
 * middleware put it there): through scoped Kysely (one transaction per
 * statement), through `tenancy.transaction` (one transaction), or as raw SQL
 * under `withTenantClient`.
 *
 * @example
 * ```ts
 * await runWithTenant('3', () => executeCall(env, 'pg', { m: 'list', variant: 0, jitter: 0 }))
 * ```
 */
export async function executeCall(env: FuzzEnv, via: Via, call: Call): Promise<unknown> {
  if (call.m === 'admin') {
    // a cross-tenant count in the middle of a tenant's request: the open withoutTenant scope
    // must end with its callback and never reach the scoped read after it, nor other requests
    const total = await withoutTenant('fuzz: count every wallet', () =>
      env.tenancy
        .kysely<FuzzDB>()
        .selectFrom('wallets')
        .select((eb) => eb.fn.countAll<string>().as('n'))
        .executeTakeFirstOrThrow(),
    )
    await pause(call.jitter)
    const rows = await executeCall(env, via, { m: 'list', variant: 0, jitter: call.jitter })
    return { total: Number(total.n), rows }
  }
  if (call.m === 'attack') {
    // a hostile call from the adversarial review's classes (see attacks.ts)
    await pause(call.jitter)
    return runAttack(env.tenancy, call.variant, call.victim)
  }
  if (call.m === 'nested') {
    // another tenant for a nested scope, then the request's own tenant again
    const list: Call = { m: 'list', variant: 0, jitter: call.jitter }
    const inner = await runWithTenant(call.victim, () => executeCall(env, via, list))
    const outer = await executeCall(env, via, list)
    return { inner, outer }
  }
  if (via === 'pg') {
    return withTenantClient(
      env.pool,
      async (c) => {
        if (env.rawFansOut) await c.query(`set local citus.multi_task_query_log_level = 'off'`)
        return viaPg(c, call)
      },
      { binding: env.binding },
    )
  }
  const db = env.tenancy.kysely<FuzzDB>()
  if (via === 'kysely') return viaKysely(db, call, env.rawFansOut)
  return env.tenancy.transaction<FuzzDB, unknown>(async (trx) => {
    if (call.m !== 'failAfterWrite') return viaKysely(trx, call, env.rawFansOut)
    await trx
      .insertInto('wallets')
      .values({ id: String(call.id), name: call.name })
      .execute()
    if (call.walletId !== null) {
      await trx
        .updateTable('wallets')
        .set({ balance: sql<number>`balance + 1000` })
        .where('id', '=', String(call.walletId))
        .execute()
    }
    await pause(call.jitter)
    throw new InjectedFailure()
  })
}
