import type { Command } from 'commander'
import { runDoctor } from '../../doctor/index.js'
import { ConfigError } from '../../errors/index.js'
import { addConfigOptions, type CliContext } from '../context.js'
import { withFlags } from '../flags.js'

/**
 * `rowtenancy doctor`: audits the live database for tenant isolation holes and
 * exits 1 when it finds any (for CI), and when it finds no tenant-aware table to
 * audit (`CONFIG_ERROR`: nothing checked is not "no findings"). `--json` prints the report.
 *
 * @example
 * ```sh
 * rowtenancy doctor --database-url postgres://owner@localhost/app --runtime-role app_runtime --json
 * ```
 */
export function register(program: Command, ctx: CliContext): void {
  const command = program
    .command('doctor')
    .description(
      'audit tenant isolation (RLS, roles, keys, views, functions); exit 1 on findings or no tables',
    )
    .option('--json', 'print the report as JSON')
    .option(
      '--citus',
      'also audit the Citus distribution and binding (default: when Citus is installed)',
    )
    .option('--no-citus', 'skip the Citus checks')
  addConfigOptions(command, [
    'databaseUrl',
    'adminDatabaseUrl',
    'tenantIdType',
    'tenantsSchema',
    'tenantColumn',
    'tables',
    'runtimeRole',
  ])
  command.action(async (opts: { json?: boolean; citus?: boolean }, cmd: Command) => {
    const config = await ctx.config(cmd)
    const pool = await ctx.pool(config, {
      url: config.adminDatabaseUrl ?? config.databaseUrl,
      max: 1,
    })
    const report = await runDoctor(pool, {
      tables: config.tables,
      tenantColumn: config.tenantColumn,
      tenantIdType: config.tenantIdType,
      tenantsSchema: config.tenantsSchema,
      runtimeRole: config.runtimeRole,
      citus: cmd.getOptionValueSource('citus') === 'cli' ? opts.citus : 'auto',
    })
    // Nothing checked is not "no findings": the library reports it, the command refuses it.
    const nothing = report.findings.find((f) => f.code === 'NO_TENANT_TABLES')
    if (nothing)
      throw new ConfigError(`doctor: ${withFlags(nothing.message)} ${withFlags(nothing.fix)}`)
    if (!report.ok) process.exitCode = 1
    if (opts.json) {
      ctx.out.json(report)
      return
    }
    for (const f of report.findings) {
      ctx.out.line(`${f.severity === 'error' ? 'ERROR' : 'WARN '} ${f.code}  ${f.object}`)
      ctx.out.line(`      ${f.message}`)
      ctx.out.line(`      fix: ${f.fix}`)
    }
    for (const s of report.skipped) ctx.out.warn(`skipped: ${withFlags(s)}`)
    ctx.out.line(
      report.ok
        ? `rowtenancy doctor: no findings (${report.checked.tables.length} tenant-aware tables checked).`
        : `rowtenancy doctor: ${report.findings.length} finding(s) in ${report.checked.tables.length} tenant-aware tables.`,
    )
  })
}
