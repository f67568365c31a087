import { tmpdir } from 'node:os'
import type { Command } from 'commander'
import type pg from 'pg'
import { type MoveResult, moveTenant } from '../../lifecycle/index.js'
import { assertDatabaseName } from '../../tenants/index.js'
import { addConfigOptions, type CliContext, checkConnectionUrl } from '../context.js'
import { lifecycleProgress } from '../lifecycle-progress.js'
import { lockTimeoutMs, withLockTimeoutOption } from '../lock-timeout.js'
import { archiveKeyFromEnv, layoutFrom, tenantsCommand } from './tenant-lifecycle.js'

/** The database name of a URL, as the default placement name. */
function nameOf(url: string): string {
  try {
    return decodeURIComponent(new URL(url).pathname.replace(/^\//, '')) || 'postgres'
  } catch {
    return ''
  }
}

interface MoveFlags {
  tenantId: string
  to: string
  toName?: string
  fromName?: string
  catalogUrl?: string
  workDir?: string
  actor?: string
  json?: boolean
  progress?: boolean
  lockTimeout?: string
}

/**
 * `rowtenancy tenants move --tenant-id X --to URL`: export -> import -> verify ->
 * erase at the source, suspended meanwhile, resumable (rerun the same command
 * after a crash, or after a lock wait longer than `--lock-timeout` stopped it).
 *
 * @example
 * ```sh
 * rowtenancy tenants move --tenant-id 7 --to postgres://admin@eu-2/app --to-name eu-2
 * ```
 */
export function register(program: Command, ctx: CliContext): void {
  moveCommand(program).action((opts: MoveFlags, cmd: Command) => runMove(opts, cmd, ctx))
}

/** The `tenants move` command with its options. */
function moveCommand(program: Command): Command {
  const command = tenantsCommand(program)
    .command('move')
    .description('move one tenant to another database (verified, resumable; placement switched)')
    .requiredOption('--tenant-id <id>', 'the tenant to move')
    .requiredOption('--to <url>', 'the destination database (admin URL)')
    .option(
      '--to-name <name>',
      "the destination's name in the placement map (default: its database name)",
    )
    .option('--from-name <name>', "the source's name in the placement map", 'default')
    .option(
      '--catalog-url <url>',
      'the database holding tenants and tenant_placements (default: the source)',
    )
    .option('--work-dir <dir>', 'where the archive waits between steps', tmpdir())
    .option('--actor <name>', 'who moves it (audit log)')
    .option('--json', 'machine output: JSON event lines, the result last')
    .option('--no-progress', 'no progress output on stderr')
  withLockTimeoutOption(command)
  addConfigOptions(command, [
    'databaseUrl',
    'adminDatabaseUrl',
    'tenantsSchema',
    'targetSchema',
    'tenantColumn',
  ])
  return command
}

/** Moves the tenant between the databases the flags and the config name. */
async function runMove(opts: MoveFlags, cmd: Command, ctx: CliContext): Promise<void> {
  const lockMs = lockTimeoutMs(opts.lockTimeout)
  const archiveKey = archiveKeyFromEnv()
  const config = await ctx.config(cmd)
  checkConnectionUrl(opts.to, '--to')
  if (opts.catalogUrl !== undefined) checkConnectionUrl(opts.catalogUrl, '--catalog-url')
  const toName = opts.toName ?? nameOf(opts.to)
  assertDatabaseName(toName)
  const pools = new Map<string, pg.Pool>()
  const pool = async (url: string | undefined) => {
    const key = url ?? ''
    if (!pools.has(key)) pools.set(key, await ctx.pool(config, { url, max: 3 }))
    return pools.get(key)!
  }
  const sourceUrl = config.adminDatabaseUrl ?? config.databaseUrl
  const db = await pool(sourceUrl)
  const catalog = opts.catalogUrl ? await pool(opts.catalogUrl) : db
  const to = await pool(opts.to)
  const tty = Boolean((process.stderr as { isTTY?: boolean }).isTTY)
  const mode = opts.json ? 'json' : opts.progress === false ? 'none' : tty ? 'tty' : 'plain'
  const onEvent = lifecycleProgress({
    mode,
    stream: process.stderr,
    writeJson: (l) => ctx.out.line(l),
  })
  const r = await moveTenant({
    ...layoutFrom(config),
    db,
    catalog,
    to,
    toName,
    sourceName: opts.fromName,
    tenantId: opts.tenantId,
    workDir: opts.workDir ?? tmpdir(),
    archiveKey,
    actor: opts.actor,
    lockTimeoutMs: lockMs,
    onEvent,
  })
  printMoved(r, Boolean(opts.json), ctx)
}

/** Prints the result of a move: one JSON line, or a sentence. */
function printMoved(r: MoveResult, json: boolean, ctx: CliContext): void {
  if (json) ctx.out.line(JSON.stringify(r))
  else {
    ctx.out.line(
      `moved tenant ${r.tenantId} from ${r.from} to ${r.to}${r.resumed ? ' (resumed)' : ''}: ` +
        `${r.tables.reduce((n, t) => n + t.rows, 0)} rows verified at the destination, none left at the source, placement switched`,
    )
  }
}
