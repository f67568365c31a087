import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { quoteIdent } from '../src/sql/quote.js'
import { startEmbeddedPostgres } from '../test/helpers/embedded-server.js'

/**
 * A throw-away database for one benchmark run: on the server in `DATABASE_URL`,
 * or on an embedded PostgreSQL started for the run. `close()` drops the
 * database (and runs any `atClose` clean-ups first), then stops the server.
 *
 * @example
 * ```ts
 * const scratch = await openScratchDatabase('rt_bench_plugin')
 * const pool = new pg.Pool({ connectionString: scratch.url })
 * try { ... } finally { await pool.end(); await scratch.close() }
 * ```
 */
export interface ScratchDatabase {
  /** The new database's name. */
  readonly name: string
  /** A superuser URL of the new database. */
  readonly url: string
  /** Whether the server was started for this run (else it came from DATABASE_URL). */
  readonly embedded: boolean
  /** A connected superuser client on the server's maintenance database. */
  readonly admin: pg.Client
  close(): Promise<void>
}

/**
 * Opens a {@link ScratchDatabase} named `<prefix>_<random hex>`.
 *
 * @example
 * ```ts
 * const { url, close } = await openScratchDatabase('rt_bench_http')
 * ```
 */
export async function openScratchDatabase(prefix: string): Promise<ScratchDatabase> {
  const server = process.env.DATABASE_URL ? undefined : await startEmbeddedPostgres()
  const serverUrl = process.env.DATABASE_URL ?? server!.url
  const name = `${prefix}_${randomBytes(4).toString('hex')}`
  const admin = new pg.Client({ connectionString: serverUrl })
  await admin.connect()
  await admin.query(`create database ${quoteIdent(name)}`)
  const url = new URL(serverUrl)
  url.pathname = `/${name}`
  return {
    name,
    url: url.toString(),
    embedded: server !== undefined,
    admin,
    async close() {
      await admin.query(`drop database if exists ${quoteIdent(name)} with (force)`).catch(() => {})
      await admin.end().catch(() => {})
      await server?.stop()
    },
  }
}
