import pg from 'pg'
import { describe, inject, it } from 'vitest'

/**
 * The Citus test target (`ROWTENANCY_TEST_TARGET=citus`, `npm run test:citus`):
 * the coordinator of the kit's cluster (`../shared/citus/cluster.sh start`).
 * Citus metadata is per database, so every test database is created on all
 * nodes and registered as the kit's README explains.
 */

/** True when the run targets the Citus cluster. */
export function onCitus(): boolean {
  return inject('testTarget') === 'citus'
}

/** The reason a Citus-only test is skipped on this run (shown in the skip's title). */
export const NOT_CITUS =
  'needs the Citus cluster: run ROWTENANCY_TEST_TARGET=citus (npm run test:citus) after ../shared/citus/cluster.sh start'

/** The worker nodes registered in the coordinator's admin database. */
async function workers(admin: pg.Client): Promise<{ host: string; port: number }[]> {
  const { rows } = await admin.query<{ host: string; port: number }>(
    `select nodename as host, nodeport as port from pg_dist_node
      where noderole = 'primary' and groupid <> 0 order by nodeport`,
  )
  return rows
}

/**
 * Creates database `name` on every node of the cluster behind `adminUrl` and
 * registers the nodes in it, so tables in it can be distributed.
 */
export async function createCitusDatabase(adminUrl: string, name: string): Promise<void> {
  const admin = new pg.Client({ connectionString: adminUrl })
  await admin.connect()
  let nodes: { host: string; port: number }[]
  try {
    nodes = await workers(admin)
    await admin.query('set citus.enable_create_database_propagation = on')
    await admin.query(`create database "${name}"`)
  } finally {
    await admin.end()
  }
  const base = new URL(adminUrl)
  const on = async (host: string, port: number, sql: string[]) => {
    const url = new URL(base.toString())
    url.hostname = host
    url.port = String(port)
    url.pathname = `/${name}`
    const c = new pg.Client({ connectionString: url.toString() })
    await c.connect()
    try {
      for (const s of sql) await c.query(s)
    } finally {
      await c.end()
    }
  }
  await Promise.all(nodes.map((n) => on(n.host, n.port, ['create extension if not exists citus'])))
  await on(base.hostname, Number(base.port || 5432), [
    'create extension if not exists citus',
    `select citus_set_coordinator_host('${base.hostname}', ${Number(base.port || 5432)})`,
    ...nodes.map((n) => `select citus_add_node('${n.host}', ${n.port})`),
  ])
}

/** Drops database `name` on every node. */
export async function dropCitusDatabase(adminUrl: string, name: string): Promise<void> {
  const admin = new pg.Client({ connectionString: adminUrl })
  await admin.connect()
  try {
    await admin.query('set citus.enable_create_database_propagation = on')
    await admin.query(`drop database if exists "${name}" with (force)`)
  } finally {
    await admin.end()
  }
}

/**
 * Makes every multi-shard query of `role` in database `name` an error
 * (`citus.multi_task_query_log_level = 'error'`): a tenant-scoped query that
 * Citus cannot route to one shard fails the test instead of fanning out.
 */
export async function failFanOut(pool: pg.Pool, role: string, database: string): Promise<void> {
  await pool.query(
    `alter role "${role}" in database "${database}" set citus.multi_task_query_log_level = 'error'`,
  )
}

/**
 * On the Citus target: distributes the database's tables as `rowtenancy citus
 * distribute` does (reference: tenants and shared tables; by tenant_id: every
 * tenant-aware table) and makes every multi-shard query of `role` an error.
 * A no-op on plain PostgreSQL. Call it once the fixture's tables exist.
 */
export async function distributeOnCitus(
  pool: pg.Pool,
  role: string | undefined,
  database: string,
): Promise<void> {
  if (!onCitus()) return
  const { distribute } = await import('../../src/citus/index.js')
  await distribute(pool)
  if (role) await failFanOut(pool, role, database)
}

type TestFn = () => unknown
type ItLike = (name: string, fn: TestFn, timeout?: number) => void

/**
 * `it`, except on the Citus target, where the test is skipped with the reason in
 * its title (shown by the reporter: never a silent skip).
 *
 * @example
 * ```ts
 * notOnCitus('raw SQL without a tenant predicate asks every shard')('raw SQL ...', async () => { ... })
 * ```
 */
export function notOnCitus(reason: string): ItLike {
  if (!onCitus()) return it
  return (name, fn, timeout) => it.skip(`${name} [skipped on Citus: ${reason}]`, fn, timeout)
}

/** `describe`, skipped on the Citus target with the reason in its title. */
export function describeNotOnCitus(reason: string): (name: string, fn: () => void) => void {
  if (!onCitus()) return describe
  return (name, fn) => describe.skip(`${name} [skipped on Citus: ${reason}]`, fn)
}

/** Why the RLS-only raw SQL tests do not run on Citus (the error level makes their fan-out fail). */
export const RAW_FANS_OUT =
  'raw SQL without a tenant predicate asks every shard, an error under citus.multi_task_query_log_level = error; citus-binding.test.ts shows RLS alone on every shard'

/** Why `set_config` binding tests do not run on Citus. */
export const SET_CONFIG_LOCAL =
  'set_config binding does not reach the Citus workers (the Citus binding is SET LOCAL, see citus-binding.test.ts)'
