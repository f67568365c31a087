import { defineFaultSuite } from './helpers/fault-suite.js'

// The fault suite straight against PostgreSQL (an embedded server of its own); see helpers/fault-suite.ts.
defineFaultSuite('direct')
