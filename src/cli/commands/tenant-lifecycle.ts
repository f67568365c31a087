import { writeFile } from 'node:fs/promises'
import type { Command } from 'commander'
import type { RowtenancyConfig } from '../../config/index.js'
import { InvalidInputError } from '../../errors/index.js'
import { assertWritable } from '../../lifecycle/files.js'
import {
  eraseTenant,
  exportTenant,
  importTenant,
  type LayoutOptions,
  type LifecycleListener,
} from '../../lifecycle/index.js'
import { addConfigOptions, type CliContext } from '../context.js'
import { lifecycleProgress } from '../lifecycle-progress.js'
import { lockTimeoutMs, withLockTimeoutOption } from '../lock-timeout.js'

const KEYS = [
  'databaseUrl',
  'adminDatabaseUrl',
  'tenantsSchema',
  'targetSchema',
  'tenantColumn',
] as const

/** @internal the layout options from the merged config */
export function layoutFrom(config: RowtenancyConfig): LayoutOptions {
  return {
    schema: config.targetSchema,
    tenantsSchema: config.tenantsSchema,
    tenantColumn: config.tenantColumn,
  }
}

/** @internal the tenants command made by tenants.ts (or a new one) */
export function tenantsCommand(program: Command): Command {
  return (
    program.commands.find((c) => c.name() === 'tenants') ??
    program.command('tenants').description('list and manage tenants')
  )
}

interface Flags {
  json?: boolean
  progress?: boolean
  lockTimeout?: string
}

/**
 * `rowtenancy tenants export|import|erase` (and `move`, in tenant-move.ts):
 * every transaction waits at most `--lock-timeout` ms (10 s) behind another
 * session's lock, then the command stops as a crash there would and fails
 * naming that session (a rerun continues); progress on stderr (a bar on a terminal, lines otherwise, none with
 * `--no-progress`), the result on stdout (`--json`: JSON event lines, the result last).
 *
 * @example
 * ```sh
 * rowtenancy tenants export --tenant-id 7 --out acme.rtar
 * rowtenancy tenants import --in acme.rtar --as-tenant-id 42
 * rowtenancy tenants erase --tenant-id 7 --yes --certificate erased-7.json
 * ```
 */
export function register(program: Command, ctx: CliContext): void {
  const tenants = tenantsCommand(program)
  registerExport(tenants, ctx)
  registerImport(tenants, ctx)
  registerErase(tenants, ctx)
}

/** A lifecycle subcommand with `--json`, `--no-progress`, `--lock-timeout` and the config options. */
function subcommand(tenants: Command, name: string, description: string): Command {
  return addConfigOptions(
    withLockTimeoutOption(
      tenants
        .command(name)
        .description(description)
        .option('--json', 'machine output: JSON event lines, the result last')
        .option('--no-progress', 'no progress output on stderr'),
    ),
    [...KEYS],
  )
}

/** The environment variable the archive key is read from (not a flag: a flag would show in `ps`). */
const ARCHIVE_KEY_ENV = 'ROWTENANCY_ARCHIVE_KEY'

/**
 * The archive key from the environment, undefined when it is not set; a key
 * shorter than 16 bytes is refused before anything runs.
 *
 * @internal
 */
export function archiveKeyFromEnv(): string | undefined {
  const key = process.env[ARCHIVE_KEY_ENV]
  if (key === undefined) return undefined
  if (Buffer.byteLength(key, 'utf8') < 16) {
    throw new InvalidInputError(
      `${ARCHIVE_KEY_ENV} is set but shorter than 16 bytes (an empty value counts as set): set it to a random secret ` +
        '(e.g. `openssl rand -hex 32`), or unset it to write and read unsigned archives.',
    )
  }
  return key
}

/** The configuration, an owner pool and the progress listener the flags ask for. */
async function setup(ctx: CliContext, cmd: Command, opts: Flags) {
  const config = await ctx.config(cmd)
  const pool = await ctx.pool(config, {
    url: config.adminDatabaseUrl ?? config.databaseUrl,
    max: 3,
  })
  const tty = Boolean((process.stderr as { isTTY?: boolean }).isTTY)
  const mode = opts.json ? 'json' : opts.progress === false ? 'none' : tty ? 'tty' : 'plain'
  const onEvent: LifecycleListener = lifecycleProgress({
    mode,
    stream: process.stderr,
    writeJson: (line) => ctx.out.line(line),
  })
  return { config, pool, onEvent }
}

/** The result on stdout: JSON with `--json`, else one line of text. */
function printResult(ctx: CliContext, opts: Flags, value: unknown, text: string): void {
  if (opts.json) ctx.out.line(JSON.stringify(value))
  else ctx.out.line(text)
}

function registerExport(tenants: Command, ctx: CliContext): void {
  subcommand(tenants, 'export', 'write one tenant to a portable, checksummed archive')
    .requiredOption('--tenant-id <id>', 'the tenant to export')
    .requiredOption('--out <file>', 'the archive to write')
    .action(async (opts: Flags & { tenantId: string; out: string }, cmd: Command) => {
      const lockMs = lockTimeoutMs(opts.lockTimeout)
      const archiveKey = archiveKeyFromEnv()
      const { config, pool, onEvent } = await setup(ctx, cmd, opts)
      const r = await exportTenant({
        ...layoutFrom(config),
        db: pool,
        lockTimeoutMs: lockMs,
        tenantId: opts.tenantId,
        out: opts.out,
        archiveKey,
        onEvent,
      })
      printResult(
        ctx,
        opts,
        { ...r.manifest, bytes: r.bytes, sha256: r.sha256 },
        `exported tenant ${r.manifest.tenant.id} (${r.manifest.tables.length} tables, ` +
          `${r.manifest.tables.reduce((n, t) => n + t.rows, 0)} rows, ${r.bytes} bytes) to ${opts.out}` +
          (archiveKey === undefined ? '' : `, signed with ${ARCHIVE_KEY_ENV}`),
      )
    })
}

type ImportFlags = Flags & { in: string; asTenantId?: string; slug?: string; replace?: boolean }

function registerImport(tenants: Command, ctx: CliContext): void {
  subcommand(tenants, 'import', 'load a tenant archive (one transaction, verified)')
    .requiredOption('--in <file>', 'the archive to read')
    .option('--as-tenant-id <id>', 'import under this id instead of the archived one')
    .option('--slug <slug>', "the imported tenant's slug (default: the archived one)")
    .option('--replace', 'erase an existing tenant with the same id first (same transaction)')
    .action(async (opts: ImportFlags, cmd: Command) => {
      const lockMs = lockTimeoutMs(opts.lockTimeout)
      const archiveKey = archiveKeyFromEnv()
      const { config, pool, onEvent } = await setup(ctx, cmd, opts)
      const r = await importTenant({
        ...layoutFrom(config),
        db: pool,
        lockTimeoutMs: lockMs,
        in: opts.in,
        asTenantId: opts.asTenantId,
        slug: opts.slug,
        replace: opts.replace === true,
        archiveKey,
        onEvent,
      })
      if (r.signature === 'not-checked') {
        ctx.out.warn(
          `the archive carries a signature line, not checked: ${ARCHIVE_KEY_ENV} is not set`,
        )
      }
      for (const d of r.drift) ctx.out.warn(`drift (not blocking): ${d.message}`)
      for (const d of r.skippedDomains)
        ctx.out.warn(`domain ${d} belongs to another tenant here: not imported`)
      printResult(
        ctx,
        opts,
        r,
        `imported tenant ${r.tenantId} (${r.slug}): ${r.rows} rows in ${r.tables.length} tables, ` +
          `checksums match the archive${r.signature === 'verified' ? ', signature verified' : ''}` +
          (r.replaced ? ' (replaced the existing tenant)' : ''),
      )
    })
}

type EraseFlags = Flags & {
  tenantId: string
  yes?: boolean
  dryRun?: boolean
  certificate?: string
  actor?: string
  reason: string
}

function registerErase(tenants: Command, ctx: CliContext): void {
  subcommand(tenants, 'erase', 'delete every row of one tenant, with a certificate')
    .requiredOption('--tenant-id <id>', 'the tenant to erase')
    .option('--yes', 'confirm the erasure')
    .option('--dry-run', 'count and checksum only; delete nothing')
    .option('--certificate <file>', 'write the erasure certificate (JSON) to this file')
    .option('--actor <name>', 'who asks (audit log and certificate); the OS user by default')
    .option('--reason <text>', 'why (audit log)', 'tenant erase')
    .action(async (opts: EraseFlags, cmd: Command) => {
      const lockMs = lockTimeoutMs(opts.lockTimeout)
      if (!opts.yes && !opts.dryRun) {
        throw new InvalidInputError(
          `Erasing tenant ${opts.tenantId} deletes all of its rows for good: add --yes to confirm, or --dry-run to see the counts.`,
        )
      }
      if (opts.certificate !== undefined) {
        await assertWritable(opts.certificate, 'the erasure certificate', 'nothing was erased')
      }
      const { config, pool, onEvent } = await setup(ctx, cmd, opts)
      const cert = await eraseTenant({
        ...layoutFrom(config),
        db: pool,
        lockTimeoutMs: lockMs,
        tenantId: opts.tenantId,
        dryRun: opts.dryRun === true,
        actor: opts.actor,
        reason: opts.reason,
        onEvent,
      })
      if (opts.certificate) await writeFile(opts.certificate, `${JSON.stringify(cert, null, 2)}\n`)
      const rows = cert.tables.reduce((n, t) => n + t.rows, 0)
      printResult(
        ctx,
        opts,
        cert,
        cert.dryRun
          ? `dry run: tenant ${cert.tenant.id} has ${rows} rows in ${cert.tables.length} tables; nothing deleted`
          : `erased tenant ${cert.tenant.id}: ${rows} rows from ${cert.tables.length} tables, none left` +
              (opts.certificate ? `; certificate in ${opts.certificate}` : ''),
      )
    })
}
