import type { Command } from 'commander'
import { MigrationError } from '../../errors/index.js'
import { rollbackTenants } from '../../migrate/index.js'
import { rollbackOnline } from '../../migrate/online/index.js'
import { addConfigOptions, type CliContext } from '../context.js'
import { collect } from '../migration-options.js'
import { fenceTimeoutFlag } from './migrate-online.js'

/**
 * `rowtenancy rollback --tenant-id <id>`: removes a migrated tenant's rows from the
 * shared tables (and its tenants row when the migration created it); the source
 * schema stays as it is, and a later migrate copies the tenant again.
 *
 * @example
 * ```sh
 * rowtenancy rollback --tenant-id 7
 * rowtenancy rollback --tenant-id 7 --online   # cut over by --online: back to its schema, served meanwhile
 * ```
 */
export function register(program: Command, ctx: CliContext): void {
  const command = program
    .command('rollback')
    .description(
      "remove a migrated tenant's rows from the shared tables (the source schema is kept)",
    )
    .requiredOption('--tenant-id <id>', 'the tenant (repeatable)', collect)
    .option('--json', 'print JSON')
    .option(
      '--online',
      'a tenant cut over by migrate --online: move its rows back to its schema while the app serves',
    )
    .option('--fence-timeout <ms>', '--online: longest wait for the tenant requests in flight')
  addConfigOptions(command, [
    'databaseUrl',
    'adminDatabaseUrl',
    'tenantsSchema',
    'targetSchema',
    'tenantColumn',
  ])
  command.action(async (opts: RollbackFlags, cmd: Command) => {
    const fenceTimeoutMs = onlineFence(opts)
    const config = await ctx.config(cmd)
    const pool = await ctx.pool(config, { url: config.adminDatabaseUrl ?? config.databaseUrl })
    if (fenceTimeoutMs !== undefined) {
      for (const tenantId of opts.tenantId) {
        const r = await rollbackOnline({
          db: pool,
          tenantId,
          fenceTimeoutMs,
          targetSchema: config.targetSchema,
          tenantsSchema: config.tenantsSchema,
          tenantColumn: config.tenantColumn,
        })
        if (opts.json) ctx.out.json({ tenantId, fenceMs: r.fenceMs })
        else
          ctx.out.line(
            `tenant ${tenantId}: back on its schema (fence ${r.fenceMs.toFixed(0)} ms); its shared rows removed`,
          )
      }
      return
    }
    const results = await rollbackTenants({
      db: pool,
      tenantIds: opts.tenantId,
      targetSchema: config.targetSchema,
      tenantsSchema: config.tenantsSchema,
      tenantColumn: config.tenantColumn,
    })
    if (opts.json) ctx.out.json(results)
    else {
      for (const r of results) {
        const rows = Object.values(r.deleted).reduce((n, x) => n + x, 0)
        ctx.out.line(
          `tenant ${r.tenantId}: rolled back, ${rows} rows removed${r.tenantRemoved ? ', tenant row removed' : ''}`,
        )
      }
    }
  })
}

interface RollbackFlags {
  tenantId: string[]
  json?: boolean
  online?: boolean
  fenceTimeout?: string
}

/** `--fence-timeout` checked (with `--online` only); undefined without `--online`. */
function onlineFence(opts: RollbackFlags): number | undefined {
  if (!opts.online) {
    if (opts.fenceTimeout !== undefined)
      throw new MigrationError('--fence-timeout goes with --online.')
    return undefined
  }
  return fenceTimeoutFlag(opts.fenceTimeout)
}
