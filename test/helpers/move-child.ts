/**
 * Runs one `moveTenant` in a child process and kills itself with SIGKILL at a
 * seeded point: `argv[2]` is JSON `{ source, dest, tenantId, toName, workDir, crashAt }`,
 * where `crashAt` is a move state (after it is recorded) or `export-table` /
 * `import-table` (in the middle of the copy, before its commit).
 */
import pg from 'pg'
import { moveTenant } from '../../src/lifecycle/index.js'

const args = JSON.parse(process.argv[2]!)
const die = () => process.kill(process.pid, 'SIGKILL')
const db = new pg.Pool({ connectionString: args.source, max: 3 })
const to = new pg.Pool({ connectionString: args.dest, max: 3 })
await moveTenant({
  db,
  to,
  toName: args.toName,
  tenantId: args.tenantId,
  workDir: args.workDir,
  onStep: (state) => {
    if (state === args.crashAt) die()
  },
  onEvent: (e) => {
    if (e.type === 'table' && e.index === 1 && `${e.op}-table` === args.crashAt) die()
  },
})
await db.end()
await to.end()
process.exit(0)
