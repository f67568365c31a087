import type { Command } from 'commander'
import { installTenantTables } from '../../tenants/index.js'
import { addConfigOptions, type CliContext } from '../context.js'

/**
 * `rowtenancy init`: installs the tenants tables (idempotent).
 *
 * @example
 * ```sh
 * rowtenancy init --database-url postgres://localhost/app --tenant-id-type uuid
 * ```
 */
export function register(program: Command, ctx: CliContext): void {
  const command = program
    .command('init')
    .description('create the tenants and tenant_domains tables (idempotent)')
    .option('--json', 'print the result as JSON')
  addConfigOptions(command, ['databaseUrl', 'adminDatabaseUrl', 'tenantIdType', 'tenantsSchema'])
  command.action(async (opts: { json?: boolean }, cmd: Command) => {
    const config = await ctx.config(cmd)
    const pool = await ctx.pool(config, { url: config.adminDatabaseUrl ?? config.databaseUrl })
    await installTenantTables(pool, { idType: config.tenantIdType, schema: config.tenantsSchema })
    const result = {
      installed: ['tenants', 'tenant_domains'],
      schema: config.tenantsSchema,
      idType: config.tenantIdType,
    }
    if (opts.json) ctx.out.json(result)
    else
      ctx.out.line(
        `rowtenancy: ${config.tenantsSchema}.tenants and tenant_domains are in place (id type ${config.tenantIdType}).`,
      )
  })
}
