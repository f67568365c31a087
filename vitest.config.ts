import { configDefaults, defineConfig } from 'vitest/config'

/**
 * The suites run on the Citus cluster (ROWTENANCY_TEST_TARGET=citus, `npm run test:citus`):
 * the Citus ones, and the RLS, binding, plugin, migration and fuzz suites, whose fixtures
 * distribute their tables there (tests that cannot apply skip with the reason in the title).
 */
const CITUS_SUITES = [
  'test/citus-*.test.ts',
  'test/rls-isolation.test.ts',
  'test/binding-dialect.test.ts',
  'test/binding-prepared.test.ts',
  'test/binding-tenancy.test.ts',
  'test/pg-with-tenant-client.test.ts',
  'test/kysely-execution.test.ts',
  'test/fuzz-isolation.test.ts',
  'test/migrate-core.test.ts',
  'test/migrate-generated-target.test.ts',
  'test/migrate-crash.test.ts',
]

/**
 * Not run on Citus, each for a reason `.ci/run` prints: binding-sealed (the seal covers the
 * coordinator's backend and transaction, which the workers do not share), binding-session (its
 * attacks are raw statements without a tenant predicate, which fan out to every shard and are
 * refused there by design).
 */
const CITUS_EXCLUDED: string[] = []

export default defineConfig({
  test: {
    include:
      process.env.ROWTENANCY_TEST_TARGET === 'citus'
        ? CITUS_SUITES
        : ['test/**/*.test.ts', 'src/**/*.test.ts'],
    exclude: [
      ...configDefaults.exclude,
      ...(process.env.ROWTENANCY_TEST_TARGET === 'citus' ? CITUS_EXCLUDED : []),
    ],
    globalSetup: ['test/helpers/global-setup.ts'],
    setupFiles: ['test/helpers/setup-pg.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    reporters: ['default'],
  },
})
