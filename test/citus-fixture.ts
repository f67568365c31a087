import pg from 'pg'
import { distribute } from '../src/citus/index.js'
import { failFanOut } from './helpers/citus.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'
import { type RlsFixture, setupRlsFixture } from './rls-fixture.js'

/**
 * The RLS fixture (tenants 1 and 2, `accounts` under forced RLS, a runtime
 * role) on a fresh Citus database, distributed by `rowtenancy citus distribute`
 * (tenants: reference; accounts: by tenant_id), with every multi-shard query of
 * the runtime role an error.
 */
export async function setupCitusFixture(
  label: string,
): Promise<{ db: TestDatabase; fx: RlsFixture; admin: pg.Pool }> {
  const db = await createTestDatabase(label)
  const fx = await setupRlsFixture(db)
  await distribute(db.pool)
  await failFanOut(db.pool, fx.role, db.name)
  const admin = new pg.Pool({ connectionString: db.url, max: 2 })
  return { db, fx, admin }
}

/** The error Citus raises for a multi-shard query under `multi_task_query_log_level = 'error'`. */
export const FAN_OUT = /multi-task query about to be executed/
