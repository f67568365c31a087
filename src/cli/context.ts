import type { Command } from 'commander'
import { Option } from 'commander'
import pg from 'pg'
import { CONFIG_KEYS, type RowtenancyConfig } from '../config/config-keys.js'
import { loadConfig } from '../config/load-config.js'
import { ConfigError, DatabaseUnreachableError } from '../errors/index.js'
import { hidePasswords } from '../sql/redact.js'
import { createOutput, type Output } from './output.js'

/**
 * What every CLI command gets: the merged configuration, database pools with a
 * checked connection, and an output.
 *
 * @example
 * ```ts
 * export function register(program: Command, ctx: CliContext) {
 *   addConfigOptions(program.command('hello'), ['databaseUrl']).action(async (_o, cmd) => {
 *     const config = await ctx.config(cmd)
 *     const pool = await ctx.pool(config)
 *     ctx.out.line(String((await pool.query('select 1 as one')).rows[0].one))
 *   })
 * }
 * ```
 */
export interface CliContext {
  /** The config for a command: defaults < config file < env < the command's flags. */
  config(command: Command): Promise<RowtenancyConfig>
  /** A pool on `config.databaseUrl` (or `url`), connection checked; closed when the CLI exits. */
  pool(
    config: RowtenancyConfig,
    options?: { url?: string; max?: number; flag?: string },
  ): Promise<pg.Pool>
  /** Where results go. */
  readonly out: Output
  /** Closes every pool opened through `pool()`. */
  close(): Promise<void>
}

/**
 * Adds the flags of the named config keys to a command (e.g. `--jobs`,
 * `--id-strategy`), so every key a command reads can also come from a flag.
 *
 * @example
 * ```ts
 * addConfigOptions(program.command('migrate'), ['jobs', 'idStrategy'])
 * ```
 */
export function addConfigOptions(
  command: Command,
  keys: readonly (keyof RowtenancyConfig)[],
): Command {
  for (const key of keys) {
    const spec = CONFIG_KEYS.find((k) => k.key === key)
    if (!spec) {
      throw new ConfigError(
        `No config key ${key}: use one of ${CONFIG_KEYS.map((k) => k.key).join(', ')} (see config-keys.ts).`,
      )
    }
    if (spec.type === 'boolean') {
      command.addOption(new Option(spec.flag, `${spec.description} (env ${spec.env})`))
      command.addOption(new Option(spec.flag.replace(/^--/, '--no-'), `do not ${spec.description}`))
      continue
    }
    const option = new Option(`${spec.flag} <value>`, `${spec.description} (env ${spec.env})`)
    if (Array.isArray(spec.type)) option.choices(spec.type as string[])
    command.addOption(option)
  }
  return command
}

/**
 * Throws a `ConfigError` unless `url` is a PostgreSQL connection URL
 * (`postgres://` or `postgresql://`, or a Unix socket directory such as
 * `/var/run/postgresql`): anything else would be read by the driver as some
 * host name and fail later with a confusing DNS error, or not at all.
 *
 * @example
 * ```ts
 * checkConnectionUrl('localhost:5432/app', '--database-url') // ConfigError
 * ```
 */
export function checkConnectionUrl(url: string, flag: string): void {
  if (url.startsWith('/')) return
  const protocol = urlProtocol(url) ?? urlProtocol(url.replace('@/', '@socket-host/'))
  if (protocol === 'postgres:' || protocol === 'postgresql:' || protocol === 'socket:') return
  // Never echo a password (hidden before the cut: a cut could split the one it hides).
  const shown = JSON.stringify(hidePasswords(url).slice(0, 80))
  const why = /^postgres(ql)?:\/\//i.test(url)
    ? ' (it does not parse: a port above 65535, or a character in the user or password such as @ # / that must be percent-encoded?)'
    : /^\s*\w+\s*=/.test(url)
      ? ' (a key/value connection string: the driver reads only URLs)'
      : ''
  throw new ConfigError(
    `${flag} is not a PostgreSQL connection URL: ${shown}${why}. ` +
      // The shape without `//user:password@`: every line printed hides that as a password.
      'Write it as postgres://user@host:5432/database, with a password as user:password@host.',
  )
}

/**
 * The protocol of `url`, `undefined` when it does not parse. A URL with a login
 * and no host (`postgres://user@/db?host=/var/run/postgresql`) does not, but
 * the driver reads it: the caller tries it again with a stand-in host.
 */
function urlProtocol(url: string): string | undefined {
  try {
    return new URL(url).protocol
  } catch {
    return undefined
  }
}

/**
 * Makes the {@link CliContext} of one CLI run.
 *
 * @example
 * ```ts
 * const ctx = createCliContext()
 * ```
 */
export function createCliContext(out: Output = createOutput()): CliContext {
  const pools: pg.Pool[] = []
  return {
    out,
    async config(command) {
      const all = command.optsWithGlobals() as Record<string, unknown>
      const flags: Record<string, unknown> = {}
      for (const spec of CONFIG_KEYS)
        if (all[spec.key] !== undefined) flags[spec.key] = all[spec.key]
      return loadConfig({ file: all.config as string | undefined, flags })
    },
    async pool(config, options = {}) {
      const url = options.url ?? config.databaseUrl
      if (!url) {
        throw new ConfigError(
          'No database given: pass --database-url, set DATABASE_URL, or put databaseUrl in rowtenancy.config.json.',
        )
      }
      checkConnectionUrl(
        url,
        options.flag ??
          (url === config.databaseUrl
            ? '--database-url (or DATABASE_URL)'
            : url === config.adminDatabaseUrl
              ? '--admin-database-url (or ROWTENANCY_ADMIN_DATABASE_URL)'
              : 'The database URL'),
      )
      const pool = new pg.Pool({
        connectionString: url,
        max: options.max ?? 10,
        connectionTimeoutMillis: 10_000,
      })
      pool.on('error', () => {})
      try {
        await pool.query('select 1')
      } catch (err) {
        await pool.end().catch(() => {})
        throw new DatabaseUnreachableError(hidePasswords(url), { cause: err })
      }
      pools.push(pool)
      return pool
    },
    async close() {
      await Promise.all(pools.splice(0).map((p) => p.end().catch(() => {})))
    },
  }
}
