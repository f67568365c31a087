import pg from 'pg'

/**
 * Test-run setup: every `pg.Pool` made by a test gets a listener for errors of
 * idle clients. Dropping a test database (`drop database ... with (force)`)
 * terminates the idle connections of pools a test forgot to end; without a
 * listener, pg's 'error' event would crash the worker with an unhandled error
 * that has nothing to do with the test's assertions.
 */
const Base = pg.Pool
class QuietPool extends Base {
  constructor(config?: pg.PoolConfig) {
    super(config)
    this.on('error', () => {})
  }
}
pg.Pool = QuietPool as typeof pg.Pool
