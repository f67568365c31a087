import { describe, it } from 'vitest'
import { defineFaultSuite } from './helpers/fault-suite.js'
import { pgbouncerBinary } from './helpers/pgbouncer.js'

// The fault suite through PgBouncer (transaction pooling) in front of an embedded server of its
// own; see helpers/fault-suite.ts. Without pgbouncer installed (.ci/pgbouncer.sh) it says so.
if (pgbouncerBinary()) defineFaultSuite('pgbouncer')
else
  describe('faults through PgBouncer', () =>
    it.skip('pgbouncer is not installed: run .ci/pgbouncer.sh', () => {}))
