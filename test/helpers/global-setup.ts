import type { TestProject } from 'vitest/node'
import { startEmbeddedPostgres } from './embedded-server.js'

declare module 'vitest' {
  export interface ProvidedContext {
    /** Admin URL of the server every test database is created on. */
    databaseUrl: string
    /** 'env' when DATABASE_URL was given, 'embedded' when the harness started one. */
    databaseSource: 'env' | 'embedded'
  }
}

/**
 * Vitest global setup: use the server in DATABASE_URL, or start an embedded
 * PostgreSQL for the run and remove it afterwards (also when tests fail).
 */
export default async function setup(project: TestProject) {
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
