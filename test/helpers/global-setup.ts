import pg from 'pg'
import type { TestProject } from 'vitest/node'
import { startEmbeddedPostgres } from './embedded-server.js'

declare module 'vitest' {
  export interface ProvidedContext {
    /** Admin URL of the server every test database is created on. */
    databaseUrl: string
    /** 'env' when DATABASE_URL was given, 'embedded' when the harness started one. */
    databaseSource: 'env' | 'embedded' | 'citus'
    /** `citus` with ROWTENANCY_TEST_TARGET=citus: test databases live on the Citus cluster. */
    testTarget: 'postgres' | 'citus'
  }
}

/**
 * Vitest global setup: use the server in DATABASE_URL, or start an embedded
 * PostgreSQL for the run and remove it afterwards (also when tests fail).
 */
export default async function setup(project: TestProject) {
  const target = process.env.ROWTENANCY_TEST_TARGET ?? 'postgres'
  if (target !== 'postgres' && target !== 'citus') {
    throw new Error(
      `ROWTENANCY_TEST_TARGET must be postgres or citus, got ${JSON.stringify(target)}.`,
    )
  }
  project.provide('testTarget', target)
  if (target === 'citus') {
    const url = process.env.CITUS_URL ?? 'postgres://postgres@127.0.0.1:9700/postgres'
    await assertCitus(url)
    project.provide('databaseUrl', url)
    project.provide('databaseSource', 'citus')
    return
  }
  const fromEnv = process.env.DATABASE_URL
  if (fromEnv) {
    project.provide('databaseUrl', fromEnv)
    project.provide('databaseSource', 'env')
    return
  }
  const server = await startEmbeddedPostgres()
  project.provide('databaseUrl', server.url)
  project.provide('databaseSource', 'embedded')
  const stop = () => server.stop()
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
  return async () => {
    await stop()
  }
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
