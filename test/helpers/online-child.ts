/**
 * Runs one `migrateOnline` in a child process and kills itself with SIGKILL at a
 * seeded point: `argv[2]` is JSON `{ url, jobs, crashAt: { phase, nth } }`: the
 * `nth` time (1-based) a tenant reaches `phase` (`copying`: before its triggers,
 * `catching-up`: after its copy committed, `fenced`: inside its cut-over
 * transaction, holding the fence).
 */
import pg from 'pg'
import { migrateOnline } from '../../src/migrate/online/index.js'

const args = JSON.parse(process.argv[2]!)
const db = new pg.Pool({ connectionString: args.url, max: 4 })
let seen = 0
await migrateOnline({
  db,
  all: true,
  jobs: args.jobs ?? 1,
  fenceTimeoutMs: 5_000,
  onEvent: (e) => {
    if (
      e.type === 'online-tenant' &&
      e.phase === args.crashAt.phase &&
      ++seen === args.crashAt.nth
    ) {
      process.kill(process.pid, 'SIGKILL')
    }
  },
})
await db.end()
process.exit(0)
