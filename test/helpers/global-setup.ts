import pg from 'pg'
import type { TestProject } from 'vitest/node'
import { startEmbeddedPostgres } from './embedded-server.js'
import { startPgBouncer } from './pgbouncer.js'

declare module 'vitest' {
  export interface ProvidedContext {
    /** Admin URL of the server every test database is created on. */
    databaseUrl: string
    /** 'env' when DATABASE_URL was given, 'embedded' when the harness started one. */
    databaseSource: 'env' | 'embedded' | 'citus'
    /** `citus` with ROWTENANCY_TEST_TARGET=citus: test databases live on the Citus cluster. */
    testTarget: 'postgres' | 'citus'
    /**
     * 'direct', or 'pgbouncer' (ROWTENANCY_TEST_TARGET=pgbouncer): every connection
     * of the run goes through a PgBouncer in transaction pooling mode the harness
     * started in front of the server.
     */
    databaseTarget: 'direct' | 'pgbouncer'
  }
}

/**
 * Vitest global setup: use the server in DATABASE_URL, or start an embedded
 * PostgreSQL for the run and remove it afterwards (also when tests fail). With
 * ROWTENANCY_TEST_TARGET=pgbouncer, a PgBouncer (transaction pooling, its own
 * config and port) is started in front of that server and the tests connect
 * through it.
 */
export default async function setup(project: TestProject) {
  const requested = process.env.ROWTENANCY_TEST_TARGET
  if (requested === 'citus') {
    const url = process.env.CITUS_URL ?? 'postgres://postgres@127.0.0.1:9700/postgres'
    await assertCitus(url)
    project.provide('databaseUrl', url)
    project.provide('databaseSource', 'citus')
    project.provide('databaseTarget', 'direct')
    project.provide('testTarget', 'citus')
    return
  }
  project.provide('testTarget', 'postgres')
  const target = requested === 'pgbouncer' ? 'pgbouncer' : 'direct'
  const stops: (() => Promise<void>)[] = []
  const fromEnv = process.env.DATABASE_URL
  let url = fromEnv
  if (!url) {
    // PgBouncer's trust auth passes no password on: the embedded server trusts 127.0.0.1 then.
    const server = await startEmbeddedPostgres({
      auth: target === 'pgbouncer' ? 'trust' : 'password',
    })
    url = server.url
    stops.push(() => server.stop())
  }
  if (target === 'pgbouncer') {
    const bouncer = await startPgBouncer(url)
    url = bouncer.url
    stops.unshift(() => bouncer.stop())
  }
  project.provide('databaseUrl', url)
  project.provide('databaseSource', fromEnv ? 'env' : 'embedded')
  project.provide('databaseTarget', target)
  const stop = async () => {
    for (const s of stops.splice(0)) await s()
  }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
  return stop
}

/** Fails the run at once, with what to do, when the Citus coordinator is not there. */
async function assertCitus(url: string): Promise<void> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 })
  try {
    await c.connect()
    const { rows } = await c.query(
      `select count(*)::int as workers from pg_dist_node where noderole = 'primary' and groupid <> 0`,
    )
    if (!rows[0] || rows[0].workers < 1) throw new Error('the coordinator has no worker nodes')
  } catch (err) {
    throw new Error(
      `ROWTENANCY_TEST_TARGET=citus: no Citus cluster at ${url} (${(err as Error).message}). ` +
        'Start one with ../shared/citus/cluster.sh start (as root), or set CITUS_URL.',
    )
  } finally {
    await c.end().catch(() => {})
  }
}
