import type { Command } from 'commander'
import { rollbackTenants } from '../../migrate/index.js'
import { addConfigOptions, type CliContext } from '../context.js'
import { collect } from '../migration-options.js'

/**
 * `rowtenancy rollback --tenant-id <id>`: removes a migrated tenant's rows from the
 * shared tables (and its tenants row when the migration created it); the source
 * schema stays as it is, and a later migrate copies the tenant again.
 *
 * @example
 * ```sh
 * rowtenancy rollback --tenant-id 7
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
  addConfigOptions(command, [
    'databaseUrl',
    'adminDatabaseUrl',
    'tenantsSchema',
    'targetSchema',
    'tenantColumn',
  ])
  command.action(async (opts: { tenantId: string[]; json?: boolean }, cmd: Command) => {
    const config = await ctx.config(cmd)
    const pool = await ctx.pool(config, { url: config.adminDatabaseUrl ?? config.databaseUrl })
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
