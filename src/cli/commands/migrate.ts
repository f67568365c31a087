import type { Command } from 'commander'
import { MigrationError } from '../../errors/index.js'
import { formatReport, migrate } from '../../migrate/index.js'
import { addConfigOptions, type CliContext } from '../context.js'
import { withFlags } from '../flags.js'
import { collect, planOptionsFrom, SOURCE_KEYS } from '../migration-options.js'
import { createProgress } from '../progress.js'
import { checkOnlineFlags, type OnlineFlags, runOnline } from './migrate-online.js'

interface MigrateFlags extends OnlineFlags {
  online?: boolean
  all?: boolean
  tenantId?: string[]
  model?: string[]
  dryRun?: boolean
  json?: boolean
  progress?: boolean
  keepIndexes?: boolean
}

/**
 * `rowtenancy migrate-to-row-tenancy` (alias `migrate`): moves tenant schemas
 * into the shared tables. Progress goes to stderr (bars on a terminal, lines
 * otherwise); the report goes to stdout (`--json`: one JSON event per line, the
 * last one `{"type":"report",...}`). Exits 1 when any tenant failed or was blocked.
 *
 * @example
 * ```sh
 * rowtenancy migrate-to-row-tenancy --all --dry-run
 * rowtenancy migrate --all --jobs 4
 * rowtenancy migrate --tenant-id 7 --model finance.Account --json
 * ```
 */
export function register(program: Command, ctx: CliContext): void {
  const command = program
    .command('migrate-to-row-tenancy')
    .alias('migrate')
    .description(
      'move every tenant schema into the shared tenant-aware tables (resumable, verified)',
    )
    .option('--all', 'every tenant')
    .option('--tenant-id <id>', 'one tenant by its legacy id (repeatable)', collect)
    .option('--model <model>', 'only this table: app.Model or a table name (repeatable)', collect)
    .option('--dry-run', 'report tenants, tables, row counts and drift; write nothing')
    .option('--json', 'machine output: JSON events and the report, one per line')
    .option('--no-progress', 'no progress output on stderr')
    .option(
      '--keep-indexes',
      'with --all into empty shared tables: keep their secondary indexes during the copy (default: built after it)',
    )
    .option(
      '--online',
      'migrate while the app serves: tenants cut over one at a time (docs/migration.md)',
    )
    .option('--fence-timeout <ms>', '--online: longest wait at a tenant write fence (default 5000)')
    .option('--grant-to <role>', '--online: the runtime role, given access to the legacy schemas')
    .option('--prepare', '--online: install the serving map and place the tenants, copy nothing')
  addConfigOptions(command, [...SOURCE_KEYS, 'idStrategy', 'jobs', 'verify', 'strict'])
  command.action(async (opts: MigrateFlags, cmd: Command) => {
    if (!opts.all && (opts.tenantId ?? []).length === 0) {
      throw new MigrationError(
        'Say which tenants to migrate: --all, or --tenant-id <id> (repeatable).',
      )
    }
    if (opts.all && (opts.tenantId ?? []).length > 0) {
      throw new MigrationError('Give either --all or --tenant-id, not both.')
    }
    const fenceTimeoutMs = checkOnlineFlags(opts)
    const config = await ctx.config(cmd)
    const pool = await ctx.pool(config, {
      url: config.adminDatabaseUrl ?? config.databaseUrl,
      max: config.jobs + 2,
    })
    if (fenceTimeoutMs !== undefined) return runOnline(ctx, config, pool, opts, fenceTimeoutMs)
    const json = (value: unknown) => ctx.out.line(JSON.stringify(value))
    const tty = Boolean((process.stderr as { isTTY?: boolean }).isTTY)
    const mode = opts.json ? 'json' : opts.progress === false ? 'none' : tty ? 'tty' : 'plain'
    const progress = createProgress({
      mode,
      stream: process.stderr,
      writeJson: (line) => ctx.out.line(line),
    })
    const report = await migrate({
      ...planOptionsFrom(config),
      db: pool,
      all: Boolean(opts.all),
      tenantIds: opts.tenantId ?? [],
      models: opts.model ?? [],
      idStrategy: config.idStrategy,
      jobs: config.jobs,
      verify: config.verify,
      strict: config.strict,
      dryRun: Boolean(opts.dryRun),
      deferIndexes: !opts.keepIndexes,
      onEvent: progress.onEvent,
    }).finally(() => progress.finish())
    if (opts.json) json({ type: 'report', ...report })
    else for (const line of formatReport(report)) ctx.out.line(withFlags(line))
    if (!report.ok) {
      const n = report.totals
      throw new MigrationError(
        report.aborted ??
          (report.dryRun
            ? `dry run: ${n.blocked} tenant(s) would be blocked by drift (see the report); nothing was written.`
            : `${n.failed} tenant(s) failed and ${n.blocked} were blocked by drift (see the report); ` +
              'fix them and rerun: finished tenants are skipped.'),
      )
    }
  })
}
