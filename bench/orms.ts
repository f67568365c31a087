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
 *   npx tsx bench/orms.ts --quick           # 20,000 rows, 5 rounds of 0.5 s per variant
 *   npx tsx bench/orms.ts                   # 200,000 rows, 7 rounds of 1.5 s
 *   npx tsx bench/orms.ts --rounds 15       # more paired rounds (a quiet-machine run)
 *   npx tsx bench/orms.ts --only drizzle,typeorm --round-ms 1000
 *   npx tsx bench/orms.ts --quick --readers 2   # fewer concurrent readers (8 by default)
 *   npx tsx bench/orms.ts --quick --rtt-ms 2    # the server "across a network" (see below)
 *
 * Besides throughput, each round measures CPU per read: this process's
 * (`process.cpuUsage`: the ORM, pg, rowtenancy) and the server's (the
 * bench role's backends, from /proc when the server runs on this machine).
 * CPU per read does not depend on how busy the machine is, so it argues a
 * change where wall clock is noisy. With the server on this machine the run is
 * CPU-bound (a loopback round trip costs less than the CPU of a read, even with
 * one reader): (c)/(b) then follows the CPU per read more than the round trips
 * (b) adds; a server on another machine makes the round trips count.
 *
 * `--rtt-ms N` puts the server "across a network": every connection of the three
 * variants goes through `delay-proxy.mjs`, a child process that holds each chunk
 * for half a round trip each way (1 ms timer granularity). The bench measures
 * the round trip it gets (median of `select 1` through the proxy) and prints it.
 * With the client waiting on the network rather than on the CPU, the ratios show
 * what the round trips cost: (b) needs four per read, (a) and (c) one.
 *
 * Uses DATABASE_URL when set (a scratch database and role are created and
 * dropped), else an embedded PostgreSQL.
 */
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
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
import { tenantPrismaExtension } from '../src/prisma/index.js'
import { enableRls } from '../src/schema/rls-apply.js'
import { grantRuntimeRole } from '../src/schema/roles.js'
import { loadPrismaClient } from '../test/helpers/prisma-client.js'
import { openScratchDatabase } from './scratch-database.js'

const quick = process.argv.includes('--quick')
/** `--name value` as a positive integer, else `fallback`. */
function intFlag(name: string, fallback: number): number {
  const i = process.argv.indexOf(name)
  if (i === -1) return fallback
  const n = Number(process.argv[i + 1])
  if (!Number.isInteger(n) || n < 1) {
    console.error(
      `${name} needs a positive whole number, got ${JSON.stringify(process.argv[i + 1])}`,
    )
    process.exit(2)
  }
  return n
}
const onlyFlag = process.argv.indexOf('--only')
const ONLY =
  onlyFlag === -1
    ? undefined
    : new Set((process.argv[onlyFlag + 1] ?? '').toLowerCase().split(',').filter(Boolean))
const ROWS = intFlag('--rows', quick ? 20_000 : 200_000)
const TENANTS = 50
const CONCURRENCY = intFlag('--readers', 8)
const ROUND_MS = intFlag('--round-ms', quick ? 500 : 1_500)
const ROUNDS = intFlag('--rounds', quick ? 5 : 7)
const RTT_MS = process.argv.includes('--rtt-ms') ? intFlag('--rtt-ms', 0) : 0

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

/** One variant's round: reads per second and CPU microseconds per read (client, server). */
interface Sample {
  readonly qps: number
  readonly clientUs: number
  readonly serverUs: number | undefined
}

/**
 * CPU nanoseconds spent so far by the server processes whose title names this
 * run's role and database (`postgres: [cluster: ]<role> <database> <client> <state>`),
 * or undefined when the server's processes are not visible here (another machine).
 */
function serverCpuNs(marker: string): number | undefined {
  let total = 0
  let seen = false
  for (const pid of readdirSync('/proc')) {
    if (pid.charCodeAt(0) > 57) continue
    try {
      const title = readFileSync(`/proc/${pid}/cmdline`, 'latin1')
      if (!title.startsWith('postgres: ') || !title.includes(marker)) continue
      // schedstat: nanoseconds on a CPU (finer than stat's clock ticks).
      total += Number(readFileSync(`/proc/${pid}/schedstat`, 'latin1').split(' ')[0])
      seen = true
    } catch {
      // the process ended meanwhile
    }
  }
  return seen ? total : undefined
}

let backendMarker = ''

async function throughput(run: Run): Promise<Sample> {
  const server0 = serverCpuNs(backendMarker)
  const cpu0 = process.cpuUsage()
  const start = performance.now()
  const deadline = start + ROUND_MS
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
  const elapsed = performance.now() - start
  const cpu = process.cpuUsage(cpu0)
  const server1 = serverCpuNs(backendMarker)
  return {
    qps: (ops * 1000) / elapsed,
    clientUs: (cpu.user + cpu.system) / ops,
    serverUs:
      server0 === undefined || server1 === undefined ? undefined : (server1 - server0) / 1000 / ops,
  }
}

/**
 * Starts `delay-proxy.mjs` in front of `url`'s server with round trip `rttMs`;
 * resolves with the proxy's port and a stop function.
 */
async function startDelayProxy(url: URL, rttMs: number): Promise<{ port: number; stop(): void }> {
  const child = spawn(
    process.execPath,
    [
      new URL('./delay-proxy.mjs', import.meta.url).pathname,
      url.hostname,
      url.port || '5432',
      String(rttMs),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  )
  const port = await new Promise<number>((resolve, reject) => {
    let out = ''
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString()
      const m = /listening (\d+)/.exec(out)
      if (m) resolve(Number(m[1]))
    })
    child.on('exit', (code) => reject(new Error(`delay proxy exited with ${code}`)))
  })
  return { port, stop: () => child.kill('SIGTERM') }
}

/** The median round trip of `select 1` on a fresh connection to `url`, in milliseconds. */
async function measureRoundTripMs(url: string): Promise<number> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    const times: number[] = []
    for (let i = 0; i < 41; i++) {
      const t0 = performance.now()
      await client.query('select 1')
      times.push(performance.now() - t0)
    }
    return median(times)
  } finally {
    await client.end()
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const medianOrUndefined = (xs: (number | undefined)[]) =>
  xs.some((x) => x === undefined) ? undefined : median(xs as number[])
const fmt = (n: number) => Math.round(n).toLocaleString('en-US').padStart(7)

type Variant = 'a' | 'b' | 'c'
interface Summary {
  readonly a: { qps: number; clientUs: number; serverUs: number | undefined }
  readonly b: { qps: number; clientUs: number; serverUs: number | undefined }
  readonly c: { qps: number; clientUs: number; serverUs: number | undefined }
  readonly cb: number
  readonly ca: number
  readonly cbRounds: number[]
  readonly caRounds: number[]
}

function printSummary(summary: Record<string, Summary>): void {
  const us = (n: number | undefined) => (n === undefined ? '    n/a' : n.toFixed(0).padStart(7))
  console.log(
    `\nSummary: medians of ${ROUNDS} paired rounds (${ROUND_MS} ms each, ${CONCURRENCY} readers); ` +
      `load average now ${loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')}`,
  )
  console.log('  (a) the ORM on a plain pg.Pool, table without RLS: the anchor of (c)/(a)')
  console.log("  (b) the ORM's documented RLS recipe: a transaction per read with set_config")
  console.log("  (c) the ORM on rowtenancy's TenantPool, FORCE RLS, one round trip")
  console.log('\nORM         reads/s (a)     (b)     (c)   (c)/(b) goal>=2   (c)/(a) goal>=0.8')
  for (const [name, s] of Object.entries(summary)) {
    console.log(
      `${name.padEnd(10)} ${fmt(s.a.qps)} ${fmt(s.b.qps)} ${fmt(s.c.qps)}   ` +
        `${s.cb.toFixed(2).padStart(5)} ${s.cb >= 2 ? 'ok ' : 'LOW'}           ` +
        `${s.ca.toFixed(2).padStart(5)} ${s.ca >= 0.8 ? 'ok ' : 'LOW'}`,
    )
  }
  console.log(
    "\nCPU per read, microseconds (client = this process; server = the bench role's backends)",
  )
  console.log('ORM        client (a)     (b)     (c)   server (a)     (b)     (c)')
  for (const [name, s] of Object.entries(summary)) {
    console.log(
      `${name.padEnd(10)}  ${us(s.a.clientUs)} ${us(s.b.clientUs)} ${us(s.c.clientUs)}      ` +
        `${us(s.a.serverUs)} ${us(s.b.serverUs)} ${us(s.c.serverUs)}`,
    )
  }
}

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
  // the recommended set-up: the tenant pool under tenantPrismaExtension (one tenant per batch)
  const bound = new PrismaClient({ adapter: new PrismaPg(tenantPool) }).$extends(
    tenantPrismaExtension(),
  )
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
  let stopProxy = () => {}
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
    if (RTT_MS > 0) {
      const proxy = await startDelayProxy(url, RTT_MS)
      stopProxy = proxy.stop
      url.hostname = '127.0.0.1'
      url.port = String(proxy.port)
    }
    const rtt = await measureRoundTripMs(url.toString())
    console.log(
      RTT_MS > 0
        ? `network: through a delay proxy (asked ${RTT_MS} ms round trip), measured ${rtt.toFixed(2)} ms per select 1`
        : `network: direct (${url.hostname}), measured ${rtt.toFixed(2)} ms per select 1`,
    )
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

    backendMarker = ` ${role} ${scratch.name} `

    const summary: Record<string, Summary> = {}
    for (const orm of orms) {
      if (ONLY && !ONLY.has(orm.name.toLowerCase())) continue
      // warm up: connections, plans, the role check, Prisma's query compiler
      for (const run of [orm.plain, orm.documented, orm.tenantPool]) await throughput(run)
      const samples: Record<Variant, Sample[]> = { a: [], b: [], c: [] }
      const cb: number[] = []
      const ca: number[] = []
      const variants: { key: Variant; run: Run }[] = [
        { key: 'a', run: orm.plain },
        { key: 'b', run: orm.documented },
        { key: 'c', run: orm.tenantPool },
      ]
      for (let r = 0; r < ROUNDS; r++) {
        for (let i = 0; i < variants.length; i++) {
          const v = variants[(i + r) % variants.length]!
          samples[v.key].push(await throughput(v.run))
        }
        cb.push(samples.c[r]!.qps / samples.b[r]!.qps)
        ca.push(samples.c[r]!.qps / samples.a[r]!.qps)
      }
      const of = (key: Variant) => ({
        qps: median(samples[key].map((x) => x.qps)),
        clientUs: median(samples[key].map((x) => x.clientUs)),
        serverUs: medianOrUndefined(samples[key].map((x) => x.serverUs)),
      })
      summary[orm.name] = {
        a: of('a'),
        b: of('b'),
        c: of('c'),
        cb: median(cb),
        ca: median(ca),
        cbRounds: cb,
        caRounds: ca,
      }
      console.log(
        `${orm.name}: (c)/(b) rounds ${cb.map((x) => x.toFixed(2)).join(' ')}; ` +
          `(c)/(a) rounds ${ca.map((x) => x.toFixed(2)).join(' ')}`,
      )
    }
    printSummary(summary)
    console.log(
      JSON.stringify({
        bench: 'orms',
        quick,
        rows: ROWS,
        rounds: ROUNDS,
        roundMs: ROUND_MS,
        rttMs: RTT_MS,
        load: loadavg(),
        summary,
      }),
    )
  } finally {
    for (const orm of orms) await orm.close().catch(() => {})
    await Promise.all(pools.map((p) => p.end().catch(() => {})))
    stopProxy()
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
