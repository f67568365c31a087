import type { Command } from 'commander'
import type { CliContext } from '../context.js'
import { register as citus } from './citus.js'
import { register as doctor } from './doctor.js'
import { register as dropSchemas } from './drop-schemas.js'
import { register as init } from './init.js'
import { register as migrate } from './migrate.js'
import { register as rls } from './rls.js'
import { register as rollback } from './rollback.js'
import { register as schema } from './schema.js'
import { register as shell } from './shell.js'
import { register as tenantLifecycle } from './tenant-lifecycle.js'
import { register as tenantMove } from './tenant-move.js'
import { register as tenants } from './tenants.js'
import { register as verify } from './verify.js'

/**
 * Every CLI command, registered in this order (one file per command).
 *
 * @example
 * ```ts
 * for (const register of COMMANDS) register(program, ctx)
 * ```
 */
export const COMMANDS: readonly ((program: Command, ctx: CliContext) => void)[] = [
  init,
  tenants,
  tenantLifecycle,
  tenantMove,
  schema,
  migrate,
  verify,
  rollback,
  dropSchemas,
  rls,
  doctor,
  citus,
  shell,
]
