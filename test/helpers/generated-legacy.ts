import { randomBytes } from 'node:crypto'
import { expect } from 'vitest'
import { generateLegacy, type LegacySummary } from '../../examples/finance/legacy/generate.js'
import { quoteIdent } from '../../src/sql/quote.js'
import { cli } from './cli.js'
import type { TestDatabase } from './db.js'

/**
 * The finance app's legacy schemas in `db` (`generateLegacy` with `options`),
 * then `init --runtime-role role` and the shared tables generated from the
 * first tenant's schema, as the online migration starts; `role` may log in.
 * Returns the legacy summary and the runtime role's URL.
 */
export async function legacyWithSharedTables(
  db: TestDatabase,
  role: string,
  options: Parameters<typeof generateLegacy>[1],
): Promise<{ legacy: LegacySummary; runtimeUrl: string }> {
  const legacy = await generateLegacy(db.pool, options)
  for (const args of [
    ['init', '--runtime-role', role],
    ['schema', 'generate', '--from-schema', legacy.tenants[0]!.schema, '--apply'],
  ]) {
    const r = await cli([...args, '--database-url', db.url])
    expect(r.code, r.stderr).toBe(0)
  }
  const password = randomBytes(8).toString('hex')
  await db.pool.query(`alter role ${quoteIdent(role)} login password '${password}'`)
  const u = new URL(db.url)
  u.username = role
  u.password = password
  return { legacy, runtimeUrl: u.toString() }
}
