import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { inject } from 'vitest'
import { createCitusDatabase, dropCitusDatabase } from './citus.js'

/**
 * A database of its own for one test file, on the run's server.
 *
 * @example
 * ```ts
 * const db = await createTestDatabase()
 * await db.pool.query('select 1')
 * afterAll(() => db.drop())
 * ```
 */
export interface TestDatabase {
  /** Connection URL of the new database (superuser). */
  readonly url: string
  /** The new database's name. */
  readonly name: string
  /** A pool on it (superuser); closed by `drop()`. */
  readonly pool: pg.Pool
  /** Closes the pool and drops the database. */
  drop(): Promise<void>
}

/** The admin URL of the server the run uses. */
export function serverUrl(): string {
  return inject('databaseUrl')
}

/** A URL for `database` on the run's server. */
export function urlFor(database: string, base = serverUrl()): string {
  const url = new URL(base)
  url.pathname = `/${database}`
  return url.toString()
}

/** A client connected to the database at `url` as `role` with `password`. */
export async function connectAs(url: string, role: string, password: string): Promise<pg.Client> {
  const u = new URL(url)
  u.username = role
  u.password = password
  const c = new pg.Client({ connectionString: u.toString() })
  await c.connect()
  return c
}

/**
 * Drops the given roles on the run's server, if they exist (roles outlive a test's database);
 * a failure is ignored, as in an `afterAll`.
 *
 * @example
 * ```ts
 * afterAll(async () => {
 *   await db.drop()
 *   await dropRoles([role])
 * })
 * ```
 */
export async function dropRoles(roles: readonly string[]): Promise<void> {
  const admin = new pg.Client({ connectionString: serverUrl() })
  await admin.connect()
  try {
    for (const role of roles)
      await admin.query(`drop role if exists "${role.replaceAll('"', '""')}"`).catch(() => {})
  } finally {
    await admin.end()
  }
}

/**
 * Creates a fresh database (so test files can run in parallel) and a pool on it.
 *
 * @example
 * ```ts
 * const { pool, url, drop } = await createTestDatabase('plugin')
 * ```
 */
export async function createTestDatabase(label = 't'): Promise<TestDatabase> {
  const name = `rt_${label.replace(/[^a-z0-9_]/gi, '_').toLowerCase()}_${randomBytes(4).toString('hex')}`
  const citus = inject('testTarget') === 'citus'
  if (citus) await createCitusDatabase(serverUrl(), name)
  else {
    const admin = new pg.Client({ connectionString: serverUrl() })
    await admin.connect()
    try {
      await admin.query(`create database "${name}"`)
    } finally {
      await admin.end()
    }
  }
  const url = urlFor(name)
  const pool = new pg.Pool({ connectionString: url, max: 10 })
  return {
    url,
    name,
    pool,
    async drop() {
      await pool.end().catch(() => {})
      if (citus) return dropCitusDatabase(serverUrl(), name)
      const c = new pg.Client({ connectionString: serverUrl() })
      await c.connect()
      try {
        await c.query(`drop database if exists "${name}" with (force)`)
      } finally {
        await c.end()
      }
    },
  }
}
