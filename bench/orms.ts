/**
 * ORM point-read throughput on the tenant pool, per ORM, all in one run on one server:
 *
 *   (a) the ORM on a plain pg.Pool, table without RLS (the anchor: what the ORM costs alone);
 *   (b) the ORM's documented RLS shape on a plain pg.Pool, table under FORCE RLS:
 *       a transaction per read, `BEGIN; select set_config(...); query; COMMIT`
 *       (Drizzle's `db.transaction` + `tx.execute(set_config)`, Knex and TypeORM alike);
 *       Prisma's RLS extension recipe, `$transaction([set_config, query])`;
 *   (c) the ORM on the TenantPool (rowtenancy/pg), table under FORCE RLS: the bind
 *       rides in the same write as the query (one round trip).
 *
 * The same point select (`where tenant_id = $1 and id = $2`) everywhere, the same
 * runtime role, the same rows (`plain.accounts` is a copy of `public.accounts`
 * without RLS). Rounds are paired (a, b, c back to back, order rotating), and the
 * ratios (c)/(b) (goal >= 2) and (c)/(a) (goal >= 0.8) are medians of per-round
 * ratios, so load from elsewhere on the machine hits all three alike.
 *
 *   npx tsx bench/orms.ts --quick    # 20,000 rows, 5 rounds of 0.5 s per variant
 *   npx tsx bench/orms.ts            # 200,000 rows, 7 rounds of 1.5 s
 *
 * Uses DATABASE_URL when set (a scratch database and role are created and
 * dropped), else an embedded PostgreSQL.
 */
import { randomBytes } from 'node:crypto'
import { cpus, loadavg } from 'node:os'
import { PrismaPg } from '@prisma/adapter-pg'
import { and, eq, sql } from 'drizzle-orm'
import { drizzle } from 'drizzle-orm/node-postgres'
import { bigint, pgTable, text } from 'drizzle-orm/pg-core'
import knexFactory, { type Knex } from 'knex'
import pg from 'pg'
import { DataSource, EntitySchema } from 'typeorm'
import { runWithTenant } from '../src/context/index.js'
import { TenantPool } from '../src/pg/tenant-pool.js'
import { enableRls } from '../src/schema/rls-apply.js'
import { grantRuntimeRole } from '../src/schema/roles.js'
import { loadPrismaClient } from '../test/helpers/prisma-client.js'
import { openScratchDatabase } from './scratch-database.js'

const quick = process.argv.includes('--quick')
const ROWS = quick ? 20_000 : 200_000
const TENANTS = 50
const CONCURRENCY = 8
const ROUND_MS = quick ? 500 : 1_500
const ROUNDS = quick ? 5 : 7

type Pick = () => { tenant: number; id: number }
type Run = (pick: Pick) => Promise<unknown>

/** Row picker for one worker: ids of its own tenant (`id % TENANTS + 1 = tenant`). */
function picker(tenant: number, seed: number): Pick {
  let s = seed
  return () => {
    s = (s * 1103515245 + 12345) % 2147483648
    const k = s % Math.floor(ROWS / TENANTS)
    return { tenant, id: k * TENANTS + tenant - 1 }
  }
}

async function throughput(run: Run): Promise<number> {
  const deadline = performance.now() + ROUND_MS
  let ops = 0
  await Promise.all(
    Array.from({ length: CONCURRENCY }, (_, w) =>
      runWithTenant(w + 1, async () => {
        const pick = picker(w + 1, 1000 + w)
        while (performance.now() < deadline) {
          await run(pick)
          ops++
        }
      }),
    ),
  )
  return (ops * 1000) / ROUND_MS
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const fmt = (n: number) => Math.round(n).toLocaleString('en-US').padStart(7)

interface OrmVariants {
  readonly name: string
  readonly plain: Run
  readonly documented: Run
  readonly tenantPool: Run
  close(): Promise<void>
}

const accounts = pgTable('accounts', {
  tenantId: bigint('tenant_id', { mode: 'number' }).notNull(),
  id: bigint('id', { mode: 'number' }).notNull(),
  name: text('name').notNull(),
})

function drizzleVariants(
  plainPool: pg.Pool,
  runtime: pg.Pool,
  tenantPool: TenantPool,
): OrmVariants {
  const read = (db: ReturnType<typeof drizzle>, p: { tenant: number; id: number }) =>
    db
      .select({ id: accounts.id, name: accounts.name })
      .from(accounts)
      .where(and(eq(accounts.tenantId, p.tenant), eq(accounts.id, p.id)))
  const plain = drizzle({ client: plainPool })
  const rls = drizzle({ client: runtime })
  const bound = drizzle({ client: tenantPool })
  return {
    name: 'Drizzle',
    plain: (pick) => read(plain, pick()),
    documented: (pick) => {
      const p = pick()
      return rls.transaction(async (tx) => {
        await tx.execute(sql`select set_config('rowtenancy.tenant_id', ${String(p.tenant)}, true)`)
        return read(tx as unknown as ReturnType<typeof drizzle>, p)
      })
    },
    tenantPool: (pick) => read(bound, pick()),
    close: async () => {},
  }
}

function knexVariants(plainPool: pg.Pool, runtime: pg.Pool, tenantPool: TenantPool): OrmVariants {
  const on = (pool: pg.Pool) => knexFactory({ client: 'pg', connectionPool: pool } as Knex.Config)
  const plain = on(plainPool)
  const rls = on(runtime)
  const bound = on(tenantPool)
  const read = (k: Knex, p: { tenant: number; id: number }) =>
    k('accounts').select('id', 'name').where({ tenant_id: p.tenant, id: p.id })
  return {
    name: 'Knex',
    plain: (pick) => read(plain, pick()),
    documented: (pick) => {
      const p = pick()
      return rls.transaction(async (trx) => {
        await trx.raw("select set_config('rowtenancy.tenant_id', ?, true)", [String(p.tenant)])
        return read(trx, p)
      })
    },
    tenantPool: (pick) => read(bound, pick()),
    close: async () => {
      await Promise.all([plain.destroy(), rls.destroy(), bound.destroy()])
    },
  }
}

async function prismaVariants(
  plainPool: pg.Pool,
  runtime: pg.Pool,
  tenantPool: TenantPool,
): Promise<OrmVariants> {
  const PrismaClient = await loadPrismaClient()
  const plain = new PrismaClient({ adapter: new PrismaPg(plainPool, { schema: 'plain' }) })
  const rls = new PrismaClient({ adapter: new PrismaPg(runtime) })
  const bound = new PrismaClient({ adapter: new PrismaPg(tenantPool) })
  const read = (client: any, p: { tenant: number; id: number }) =>
    client.account.findFirst({
      select: { id: true, name: true },
      where: { tenantId: BigInt(p.tenant), id: BigInt(p.id) },
    })
  return {
    name: 'Prisma',
    plain: (pick) => read(plain, pick()),
    documented: (pick) => {
      const p = pick()
      // Prisma's RLS client-extension recipe: a batch transaction of set_config + the query.
      return rls.$transaction([
        rls.$executeRaw`select set_config('rowtenancy.tenant_id', ${String(p.tenant)}, true)`,
        read(rls, p),
      ])
    },
    tenantPool: (pick) => read(bound, pick()),
    close: async () => {
      await Promise.all([plain.$disconnect(), rls.$disconnect(), bound.$disconnect()])
    },
  }
}

async function typeormVariants(
  plainPool: pg.Pool,
  runtime: pg.Pool,
  tenantPool: TenantPool,
): Promise<OrmVariants> {
  const Account = new EntitySchema<{ tenantId: string; id: string; name: string }>({
    name: 'Account',
    tableName: 'accounts',
    columns: {
      tenantId: { name: 'tenant_id', type: 'bigint', primary: true },
      id: { type: 'bigint', primary: true },
      name: { type: 'text' },
    },
  })
  // TypeORM builds its pool with `new driver.Pool(...)`: this one hands back the pool given
  // (not destroyed here: destroy() would end the shared pools; they end below).
  const on = (pool: pg.Pool) =>
    new DataSource({
      type: 'postgres',
      driver: {
        Pool: function PoolGiven() {
          return pool
        },
      },
      entities: [Account],
    }).initialize()
  const plain = await on(plainPool)
  const rls = await on(runtime)
  const bound = await on(tenantPool)
  const read = (m: DataSource['manager'], p: { tenant: number; id: number }) =>
    m.findOne(Account, {
      select: { id: true, name: true },
      where: { tenantId: String(p.tenant), id: String(p.id) },
    })
  return {
    name: 'TypeORM',
    plain: (pick) => read(plain.manager, pick()),
    documented: (pick) => {
      const p = pick()
      return rls.transaction(async (m) => {
        await m.query("select set_config('rowtenancy.tenant_id', $1, true)", [String(p.tenant)])
        return read(m, p)
      })
    },
    tenantPool: (pick) => read(bound.manager, pick()),
    close: async () => {},
  }
}

async function main() {
  const scratch = await openScratchDatabase('rowtenancy_bench_orms')
  const role = `rt_bench_orm_${randomBytes(4).toString('hex')}`
  const password = randomBytes(8).toString('hex')
  const owner = new pg.Pool({ connectionString: scratch.url, max: 2 })
  owner.on('error', () => {})
  const pools: pg.Pool[] = []
  const orms: OrmVariants[] = []
  try {
    console.log(
      `rowtenancy ORM bench: ${ROWS.toLocaleString('en-US')} rows, ${TENANTS} tenants, ` +
        `${CONCURRENCY} concurrent readers, ${ROUNDS} paired rounds of ${ROUND_MS} ms${quick ? ' (quick)' : ''}`,
    )
    console.log(
      `machine: ${cpus().length} cores, load average ${loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')} (shared: absolute q/s are low and noisy; read the paired ratios)`,
    )
    await owner.query(`create table tenants (id bigint primary key)`)
    await owner.query(`insert into tenants select g from generate_series(1, ${TENANTS}) g`)
    await owner.query('create schema plain')
    for (const table of ['public.accounts', 'plain.accounts']) {
      await owner.query(`create table ${table} (
        tenant_id bigint not null, id bigint not null, name text not null, primary key (tenant_id, id))`)
      await owner.query(
        `insert into ${table} select (g % ${TENANTS}) + 1, g, md5(g::text) from generate_series(0, ${ROWS - 1}) g`,
      )
      await owner.query(`vacuum analyze ${table}`)
    }
    // Prisma's generated client knows a notes table too (never read here).
    await owner.query(
      'create table notes (tenant_id bigint, id bigint, account_id bigint, body text)',
    )
    await enableRls(owner, [{ name: 'accounts' }])
    await grantRuntimeRole(owner, { role })
    await owner.query(`alter role "${role}" password '${password}'`)
    await owner.query(`grant usage on schema plain to "${role}"`)
    await owner.query(`grant select on all tables in schema plain to "${role}"`)

    const url = new URL(scratch.url)
    url.username = role
    url.password = password
    const pool = (searchPath?: string) => {
      const p = new pg.Pool({
        connectionString: url.toString(),
        max: CONCURRENCY,
        options: searchPath ? `-c search_path=${searchPath}` : undefined,
      })
      p.on('error', () => {})
      pools.push(p)
      return p
    }
    const plainPool = pool('plain,public')
    const runtime = pool()
    const tenantPool = new TenantPool({ pool: runtime, endPool: false })

    orms.push(drizzleVariants(plainPool, runtime, tenantPool))
    orms.push(await prismaVariants(plainPool, runtime, tenantPool))
    orms.push(knexVariants(plainPool, runtime, tenantPool))
    orms.push(await typeormVariants(plainPool, runtime, tenantPool))

    const rows: string[] = []
    const summary: Record<string, { a: number; b: number; c: number; cb: number; ca: number }> = {}
    for (const orm of orms) {
      // warm up: connections, plans, the role check, Prisma's query compiler
      for (const run of [orm.plain, orm.documented, orm.tenantPool]) await throughput(run)
      const a: number[] = []
      const b: number[] = []
      const c: number[] = []
      const cb: number[] = []
      const ca: number[] = []
      const variants = [
        { run: orm.plain, out: a },
        { run: orm.documented, out: b },
        { run: orm.tenantPool, out: c },
      ]
      for (let r = 0; r < ROUNDS; r++) {
        for (let i = 0; i < variants.length; i++) {
          const v = variants[(i + r) % variants.length]!
          v.out.push(await throughput(v.run))
        }
        cb.push(c[r]! / b[r]!)
        ca.push(c[r]! / a[r]!)
      }
      summary[orm.name] = {
        a: median(a),
        b: median(b),
        c: median(c),
        cb: median(cb),
        ca: median(ca),
      }
      rows.push(
        `${orm.name.padEnd(8)} ${fmt(median(a))} ${fmt(median(b))} ${fmt(median(c))}   ` +
          `${median(cb).toFixed(2).padStart(5)} ${median(cb) >= 2 ? 'ok ' : 'LOW'}   ` +
          `${median(ca).toFixed(2).padStart(5)} ${median(ca) >= 0.8 ? 'ok ' : 'LOW'}   ` +
          `(c)/(b) rounds ${cb.map((x) => x.toFixed(2)).join(' ')}; (c)/(a) rounds ${ca.map((x) => x.toFixed(2)).join(' ')}`,
      )
    }
    console.log('\npoint reads per second (medians); ratios are medians of paired rounds')
    console.log(
      `ORM      (a) no RLS (b) documented RLS (c) tenant pool   (c)/(b) >= 2   (c)/(a) >= 0.8`,
    )
    console.log('         anchor     per-read transaction  RLS, 1 round trip')
    for (const row of rows) console.log(row)
    console.log(JSON.stringify({ bench: 'orms', quick, rows: ROWS, summary }))
  } finally {
    for (const orm of orms) await orm.close().catch(() => {})
    await Promise.all(pools.map((p) => p.end().catch(() => {})))
    await owner.end().catch(() => {})
    await scratch.admin
      .query(`drop database if exists "${scratch.name}" with (force)`)
      .catch(() => {})
    await scratch.admin.query(`drop role if exists "${role}"`).catch(() => {})
    await scratch.close()
  }
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
