import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chmod, chown, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { freePort, postgresUser } from './embedded-server.js'

/**
 * A PgBouncer the test harness started in front of a PostgreSQL server: its own
 * config, port and log in a temp dir, transaction pooling, a `*` wildcard
 * database that forwards every database name to the server, trust auth with
 * the server's roles looked up by `auth_query` (so the server must accept them
 * without a password from 127.0.0.1: the machine's PostgreSQL here, or an
 * embedded one started with trust auth).
 */
export interface PgBouncer {
  /** `server`'s URL with host and port replaced by PgBouncer's. */
  readonly url: string
  readonly port: number
  /** The end of its log (for failure messages). */
  log(): Promise<string>
  stop(): Promise<void>
}

/** The pgbouncer binary (Debian: /usr/sbin/pgbouncer), or undefined when not installed. */
export function pgbouncerBinary(): string | undefined {
  if (existsSync('/usr/sbin/pgbouncer')) return '/usr/sbin/pgbouncer'
  try {
    return execFileSync('sh', ['-c', 'command -v pgbouncer']).toString().trim() || undefined
  } catch {
    return undefined
  }
}

/**
 * Starts PgBouncer in transaction pooling mode in front of `serverUrl`.
 * `poolSize` server connections per database/user pair (small, so clients share
 * and swap server sessions, as behind a busy pooler).
 *
 * @example
 * ```ts
 * const bouncer = await startPgBouncer('postgres://postgres@127.0.0.1:5432/postgres')
 * const pool = new pg.Pool({ connectionString: bouncer.url })
 * ```
 */
export async function startPgBouncer(
  serverUrl: string,
  options: {
    poolSize?: number
    mode?: 'transaction' | 'session'
    /** Extra roles and their passwords, for a server that asks for one. */
    users?: Record<string, string>
    /** More `[pgbouncer]` settings, e.g. `{ query_wait_timeout: '3' }`. */
    settings?: Record<string, string>
  } = {},
): Promise<PgBouncer> {
  const bin = pgbouncerBinary()
  if (!bin)
    throw new Error('pgbouncer is not installed: run .ci/pgbouncer.sh (apt-get install pgbouncer)')
  const server = new URL(serverUrl)
  const dir = await mkdtemp(join(tmpdir(), 'rowtenancy-pgbouncer-'))
  await chmod(dir, 0o777)
  const port = await freePort()
  const ini = join(dir, 'pgbouncer.ini')
  const logfile = join(dir, 'pgbouncer.log')
  const admin = decodeURIComponent(server.username || 'postgres')
  const users = { [admin]: decodeURIComponent(server.password), ...options.users }
  await writeFile(
    join(dir, 'users.txt'),
    Object.entries(users)
      .map(([u, p]) => `"${u}" "${p}"\n`)
      .join(''),
  )
  await writeFile(
    ini,
    [
      '[databases]',
      `* = host=${server.hostname} port=${server.port || 5432}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = trust',
      `auth_file = ${join(dir, 'users.txt')}`,
      // roles the tests create are looked up on the server (trust: no password checked)
      `auth_user = ${admin}`,
      'auth_query = SELECT usename, passwd FROM pg_shadow WHERE usename=$1',
      `pool_mode = ${options.mode ?? 'transaction'}`,
      `default_pool_size = ${options.poolSize ?? 4}`,
      'max_client_conn = 1000',
      'max_db_connections = 0',
      'ignore_startup_parameters = extra_float_digits,options',
      'server_reset_query = DISCARD ALL',
      ...Object.entries(options.settings ?? {}).map(([k, v]) => `${k} = ${v}`),
      `logfile = ${logfile}`,
      `pidfile = ${join(dir, 'pgbouncer.pid')}`,
      'log_connections = 0',
      'log_disconnections = 0',
      '',
    ].join('\n'),
  )
  // PgBouncer refuses to run as root: run it as the postgres system user.
  const ids = userInfo().uid === 0 ? postgresUser() : undefined
  if (ids) await chown(dir, ids.uid, ids.gid)
  const child: ChildProcess = spawn(bin, [ini], { ...ids, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout?.on('data', (d) => (output += d))
  child.stderr?.on('data', (d) => (output += d))
  const kill = () => child.kill('SIGINT')
  process.once('exit', kill)
  const url = new URL(serverUrl)
  url.hostname = '127.0.0.1'
  url.port = String(port)
  const log = async () => {
    const { readFile } = await import('node:fs/promises')
    const text = await readFile(logfile, 'utf8').catch(() => '')
    return (output + text).slice(-4000)
  }
  const deadline = Date.now() + 15_000
  for (;;) {
    const c = new pg.Client({ connectionString: url.toString(), connectionTimeoutMillis: 1000 })
    try {
      await c.connect()
      await c.query('select 1')
      await c.end()
      break
    } catch (err) {
      await c.end().catch(() => {})
      if (child.exitCode !== null || Date.now() > deadline) {
        kill()
        throw new Error(`pgbouncer did not start: ${(err as Error).message}\n${await log()}`)
      }
      await new Promise((r) => setTimeout(r, 100))
    }
  }
  return {
    url: url.toString(),
    port,
    log,
    async stop() {
      process.removeListener('exit', kill)
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r))
        child.kill('SIGINT')
        await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))])
        if (child.exitCode === null) child.kill('SIGKILL')
      }
      await rm(dir, { recursive: true, force: true }).catch(() => {})
    },
  }
}
