import { defineConfig } from 'vitest/config'
import base from './vitest.config.js'

/**
 * The isolation suites through PgBouncer (transaction pooling), the third CI
 * target: `ROWTENANCY_TEST_TARGET=pgbouncer npx vitest run --config vitest.pgbouncer.config.ts`.
 */
export default defineConfig({
  ...base,
  test: {
    ...base.test,
    include: [
      'test/rls-isolation.test.ts',
      'test/rls-roles.test.ts',
      'test/binding-dialect.test.ts',
      'test/binding-tenancy.test.ts',
      'test/binding-session.test.ts',
      'test/binding-sealed.test.ts',
      'test/pg-with-tenant-client.test.ts',
      'test/fuzz-isolation.test.ts',
      'test/pgbouncer.test.ts',
      'test/pg-tenant-pool.test.ts',
      'test/orm-drizzle.test.ts',
      'test/orm-prisma.test.ts',
      'test/orm-knex.test.ts',
      'test/orm-typeorm.test.ts',
      'test/online-serving.test.ts',
      'test/session-sequences.test.ts',
      'test/adversarial-checkout-state.test.ts',
      'test/adversarial-tenant-pool-state.test.ts',
      'test/adversarial-verbatim-sql.test.ts',
      'test/adversarial-drizzle-pools.test.ts',
      'test/adversarial-prisma.test.ts',
      'test/adversarial-fan-out-ledger.test.ts',
      'test/adversarial-kysely-shapes.test.ts',
    ],
  },
})
