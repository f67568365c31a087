import type { Command } from 'commander'
import { MigrationError } from '../../errors/index.js'
import { dropSchemas } from '../../migrate/index.js'
import { addConfigOptions, type CliContext } from '../context.js'
import { collect, planOptionsFrom, SOURCE_KEYS } from '../migration-options.js'

/**
 * `rowtenancy drop-schemas [--tenant-id <id>] --yes`: drops the schemas of fully
 * migrated tenants, each only after verifying it again in the same transaction.
 *
 * @example
 * ```sh
 * rowtenancy verify && rowtenancy drop-schemas --yes
 * ```
 */
export function register(program: Command, ctx: CliContext): void {
  const command = program
    .command('drop-schemas')
    .description(
      'drop the legacy schemas of migrated tenants that verify (irreversible; needs --yes)',
    )
    .option('--tenant-id <id>', 'only this tenant (repeatable)', collect)
    .option('--yes', 'confirm: the schemas are dropped for good')
    .option('--json', 'print JSON')
  addConfigOptions(command, [...SOURCE_KEYS])
  command.action(
    async (opts: { tenantId?: string[]; yes?: boolean; json?: boolean }, cmd: Command) => {
      const config = await ctx.config(cmd)
      const pool = await ctx.pool(config, { url: config.adminDatabaseUrl ?? config.databaseUrl })
      const results = await dropSchemas({
        ...planOptionsFrom(config),
        db: pool,
        yes: opts.yes === true,
        tenantIds: opts.tenantId ?? [],
      })
      if (opts.json) ctx.out.json(results)
      else {
        for (const r of results) {
          ctx.out.line(
            `tenant ${r.tenantId} (${JSON.stringify(r.schema)}): ${r.dropped ? 'schema dropped' : `kept: ${r.problems.join('; ')}`}`,
          )
        }
        if (results.length === 0) ctx.out.line('no migrated schema to drop')
      }
      const kept = results.filter((r) => !r.dropped)
      if (kept.length > 0) {
        throw new MigrationError(
          `${kept.length} schema(s) were kept because they did not verify (see above).`,
        )
      }
    },
  )
}
