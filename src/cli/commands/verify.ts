import type { Command } from 'commander'
import { MigrationError } from '../../errors/index.js'
import { verifyMigration } from '../../migrate/index.js'
import { addConfigOptions, type CliContext } from '../context.js'
import { collect, planOptionsFrom, SOURCE_KEYS } from '../migration-options.js'

/**
 * `rowtenancy verify [--tenant-id <id>]`: recomputes per-table row counts and
 * checksums of migrated tenants, source vs target (and target vs ledger), and
 * checks foreign keys; names every legacy tenant not migrated, with the reason.
 * Exits 1 on any mismatch, on any tenant not migrated unless `--tenant-id`
 * named the tenants to check, and when it found no tenant at all (nothing
 * compared) unless `--allow-empty` says none is expected.
 *
 * @example
 * ```sh
 * rowtenancy verify
 * rowtenancy verify --tenant-id 7 --json
 * ```
 */
export function register(program: Command, ctx: CliContext): void {
  const command = program
    .command('verify')
    .description(
      'compare migrated tenants with their source schemas (counts, checksums, foreign keys)',
    )
    .option('--tenant-id <id>', 'only this tenant (repeatable)', collect)
    .option(
      '--allow-empty',
      'a database with no tenant at all (none to migrate, none migrated) passes',
    )
    .option('--json', 'print JSON')
  addConfigOptions(command, [...SOURCE_KEYS])
  command.action(
    async (opts: { tenantId?: string[]; allowEmpty?: boolean; json?: boolean }, cmd: Command) => {
      const config = await ctx.config(cmd)
      const pool = await ctx.pool(config, { url: config.adminDatabaseUrl ?? config.databaseUrl })
      const report = await verifyMigration({
        ...planOptionsFrom(config),
        db: pool,
        tenantIds: opts.tenantId ?? [],
        allowEmpty: opts.allowEmpty === true,
      })
      if (opts.json) ctx.out.json(report)
      else {
        for (const t of report.tenants) {
          const rows = t.tables.reduce((n, c) => n + c.targetRows, 0)
          ctx.out.line(
            `tenant ${t.tenantId} (${JSON.stringify(t.schema)}): ${t.ok ? 'ok' : 'MISMATCH'}, ${t.tables.length} tables, ${rows} rows`,
          )
          for (const p of t.problems) ctx.out.line(`  ${p}`)
        }
        for (const m of report.missing) {
          ctx.out.line(
            `tenant ${m.tenantId} (${JSON.stringify(m.schema)}): NOT MIGRATED (${m.state}): ${m.reason}`,
          )
        }
        for (const name of report.unbuiltIndexes) {
          ctx.out.line(
            `index ${JSON.stringify(name)}: NOT BUILT (dropped for the copy by a migration that stopped)`,
          )
        }
        ctx.out.line(
          `${report.tenants.length} tenants verified: ${report.tenants.filter((t) => !t.ok).length} mismatched` +
            `; ${report.missing.length} not migrated`,
        )
      }
      if (report.problems.length > 0) throw new MigrationError(report.problems.join('\n'))
      if (report.tenants.some((t) => !t.ok)) {
        throw new MigrationError(
          'Verification found differences (see above). Roll the tenant back and migrate it again.',
        )
      }
      if (report.unbuiltIndexes.length > 0) {
        throw new MigrationError(
          `${report.unbuiltIndexes.length} index(es) of the shared tables were dropped for a migration's copy and not ` +
            'built again (the run stopped): rerun the offline migration (`migrate-to-row-tenancy --all`), ' +
            'which builds them after its copies, or create them yourself from their recorded definitions.',
        )
      }
      if (report.missing.length > 0) {
        throw new MigrationError(
          `${report.missing.length} legacy tenant(s) are not migrated (see above): migrate them, or name ` +
            'the tenants to check with --tenant-id.',
        )
      }
    },
  )
}
