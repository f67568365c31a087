import { readFileSync } from 'node:fs'
import { Command, CommanderError } from 'commander'
import { asUnavailable } from '../sql/unavailable.js'
import { COMMANDS } from './commands/index.js'
import { type CliContext, createCliContext } from './context.js'
import { debugWanted, describeFailure } from './failure.js'

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'))
  return String(pkg.version)
}

/**
 * Builds the `rowtenancy` command-line program.
 *
 * @example
 * ```ts
 * await buildProgram(createCliContext()).parseAsync(['node', 'rowtenancy', 'tenants', 'list'])
 * ```
 */
export function buildProgram(ctx: CliContext): Command {
  const program = new Command('rowtenancy')
    .description(
      'Row-level multi-tenancy for PostgreSQL: tenants, RLS, and the schema-per-tenant migration.',
    )
    .version(version(), '-v, --version')
    .option('-c, --config <file>', 'config file (default: rowtenancy.config.json / .mjs / .js)')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .configureOutput({
      writeOut: (text) => ctx.out.line(text.trimEnd()),
      writeErr: (text) => ctx.out.warn(text.trimEnd()),
    })
  for (const register of COMMANDS) register(program, ctx)
  return program
}

/**
 * Runs the CLI and returns its exit code: 0 on success, 1 when a command fails
 * (one line on stderr says what was wrong and what to do; the stack trace only
 * with `DEBUG=rowtenancy`), 2 for a usage error.
 *
 * @example
 * ```ts
 * process.exitCode = await runCli(process.argv)
 * ```
 */
export async function runCli(argv: readonly string[], ctx = createCliContext()): Promise<number> {
  const program = buildProgram(ctx)
  try {
    await program.parseAsync([...argv])
    return typeof process.exitCode === 'number' ? process.exitCode : 0
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return 0
      // `rowtenancy help`: 0; help shown because a subcommand is missing (`rowtenancy tenants`): a usage error.
      if (err.code === 'commander.help') return err.exitCode === 0 ? 0 : 2
      return 2
    }
    // A connection lost or a timeout mid-command: DATABASE_UNAVAILABLE, not a pg stack trace.
    // Anything else (a PostgreSQL error, a bug): one clear line; the stack with DEBUG=rowtenancy.
    for (const line of describeFailure(asUnavailable(err), debugWanted())) ctx.out.warn(line)
    return 1
  } finally {
    await ctx.close()
  }
}
