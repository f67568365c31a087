import { userInfo } from 'node:os'
import { createInterface } from 'node:readline'
import { type REPLEval, type REPLServer, start as startRepl } from 'node:repl'
import { PassThrough } from 'node:stream'
import type { Command } from 'commander'
import { sql } from 'kysely'
import {
  clearCurrentTenant,
  currentTenant,
  runWithTenant,
  setCurrentTenant,
  type TenantId,
  tryCurrentTenant,
  withoutTenant,
} from '../../context/index.js'
import { runAsTopLevel } from '../../context/tenant-context.js'
import { inspectRuntimeRole, runtimeRoleProblems } from '../../db/role-check.js'
import { ConfigError, TenantNotFoundError } from '../../errors/index.js'
import { discoverTenantTables } from '../../schema/rls-apply.js'
import type { TableInput } from '../../schema/table-registry.js'
import { createTenancy, type Tenancy } from '../../tenancy/index.js'
import { parseTenantId, type Tenant, TenantStore } from '../../tenants/index.js'
import { addConfigOptions, type CliContext, redactUrl } from '../context.js'

/**
 * The shell's own state: the tenant every evaluation runs under, and the queue
 * that runs evaluations one at a time (piped input does not wait for `await`).
 *
 * @internal
 */
interface ShellState {
  tenant: string | undefined
  label: string | undefined
  queue: Promise<void>
  /** Ends the evaluation in flight (also when its error goes to the REPL's domain). */
  finish: (() => void) | undefined
}

/**
 * `rowtenancy shell`: a Node REPL on the database with the tenancy preloaded.
 * Top-level `await` works; `.tenant <id|slug>` picks the tenant every later line
 * runs under (`setCurrentTenant(id)` does the same from code), `.tenant -` clears
 * it, `.tenants` lists them.
 *
 * @example
 * ```sh
 * rowtenancy shell --database-url postgres://app@localhost/app --admin-database-url postgres://owner@localhost/app
 * rowtenancy> .tenant acme
 * rowtenancy(acme)> await db.selectFrom('finance_account').select(({ fn }) => fn.countAll().as('n')).execute()
 * rowtenancy(acme)> await allObjects('count all').selectFrom('finance_account').select(({ fn }) => fn.countAll().as('n')).execute()
 * ```
 */
export function register(program: Command, ctx: CliContext): void {
  const command = program
    .command('shell')
    .description('a Node REPL with the tenancy, a scoped db (Kysely) and allObjects preloaded')
    .option('--tenant <id>', 'start with this tenant (id or slug)')
    .option(
      '--allow-unsafe-role',
      'let db run on a role RLS does not bind (superuser, BYPASSRLS, owner); only the plugin scopes then',
    )
  addConfigOptions(command, [
    'databaseUrl',
    'adminDatabaseUrl',
    'tenantIdType',
    'tenantsSchema',
    'tenantColumn',
    'tables',
  ])
  command.action(async (opts: { tenant?: string; allowUnsafeRole?: boolean }, cmd: Command) => {
    const config = await ctx.config(cmd)
    const pool = await ctx.pool(config)
    const adminPool = config.adminDatabaseUrl
      ? await ctx.pool(config, { url: config.adminDatabaseUrl, max: 4 })
      : pool
    const tables: TableInput[] =
      config.tables.length > 0
        ? config.tables
        : (await discoverTenantTables(pool, { tenantColumn: config.tenantColumn })).map((t) =>
            t.schema === 'public' ? t.name : t,
          )
    if (tables.length === 0) {
      throw new ConfigError(
        `No tenant-aware tables: none has a ${config.tenantColumn} column. Name them with --tables a,b ` +
          'or run the migration (rowtenancy migrate-to-row-tenancy) first.',
      )
    }
    const tenancy = createTenancy({
      pool,
      adminPool,
      tables,
      tenantIdType: config.tenantIdType,
      tenantColumn: config.tenantColumn,
      allowUnsafeRole: opts.allowUnsafeRole === true,
    })
    const store = new TenantStore({
      db: adminPool,
      idType: config.tenantIdType,
      schema: config.tenantsSchema,
      ttlMs: 0,
    })
    const state: ShellState = {
      tenant: undefined,
      label: undefined,
      queue: Promise.resolve(),
      finish: undefined,
    }
    const actor = `shell:${userInfo().username}`
    const facts = await inspectRuntimeRole(pool, { tenantColumn: config.tenantColumn })
    ctx.out.warn(
      `rowtenancy shell on ${redactUrl(config.databaseUrl ?? '')} as ${facts.role}` +
        (adminPool !== pool ? ` (allObjects on ${redactUrl(config.adminDatabaseUrl ?? '')})` : ''),
    )
    ctx.out.warn(
      `tenant-aware tables: ${tables.map((t) => (typeof t === 'string' ? t : `${t.schema}.${t.name}`)).join(', ')}`,
    )
    const problems = runtimeRoleProblems(facts)
    if (problems.length > 0) {
      ctx.out.warn(
        `note: ${facts.role} ${problems.join(', ')}: RLS does not bind it, so db ` +
          (opts.allowUnsafeRole
            ? 'is scoped by the plugin only (raw SQL sees every tenant).'
            : 'refuses to run (UnsafeRoleError). Connect --database-url as the runtime role and ' +
              '--admin-database-url as the owner, or pass --allow-unsafe-role.'),
      )
    }
    ctx.out.warn(
      'preloaded: db, allObjects(reason), sql, tenancy, store, pool, setCurrentTenant, clearCurrentTenant, ' +
        'currentTenant, runWithTenant, withoutTenant. Top-level await works. .tenant <id|slug> picks a tenant.',
    )
    const promptFor = () =>
      state.label === undefined ? 'rowtenancy> ' : `rowtenancy(${state.label})> `
    let server: REPLServer | undefined
    const choose = (tenant: Tenant | undefined, id?: string) => {
      state.tenant = tenant?.id ?? id
      state.label = tenant?.slug ?? id
      server?.setPrompt(promptFor())
    }
    if (opts.tenant !== undefined) await pick(store, opts.tenant, choose)
    const terminal = process.stdin.isTTY === true && process.stdout.isTTY === true
    const input = terminal ? process.stdin : new PassThrough()
    server = startRepl({
      prompt: promptFor(),
      input,
      output: process.stdout,
      terminal,
      ignoreUndefined: true,
    })
    Object.assign(
      server.context,
      preloads(tenancy, store, pool, actor, config.tenantIdType, choose),
    )
    serializeEval(server, state)
    defineCommands(server, state, store, choose)
    if (!terminal) feedLineByLine(server, input as PassThrough)
    const repl = server
    await new Promise<void>((resolve) => repl.once('exit', resolve))
    await state.queue
    process.stdout.write('\n')
  })
}

/** What the REPL's global scope holds. @internal */
function preloads(
  tenancy: Tenancy,
  store: TenantStore,
  pool: unknown,
  actor: string,
  idType: Parameters<typeof parseTenantId>[0],
  choose: (tenant: Tenant | undefined, id?: string) => void,
): Record<string, unknown> {
  return {
    tenancy,
    store,
    pool,
    sql,
    db: tenancy.kysely(),
    allObjects: (reason = 'rowtenancy shell', options: { actor?: string } = {}) =>
      tenancy.allObjects(reason, { actor: options.actor ?? actor }),
    setCurrentTenant(id: TenantId) {
      const canonical = parseTenantId(idType, id)
      choose(undefined, canonical)
      setCurrentTenant(canonical)
    },
    clearCurrentTenant() {
      choose(undefined)
      clearCurrentTenant()
    },
    currentTenant,
    tryCurrentTenant,
    runWithTenant,
    withoutTenant,
  }
}

/**
 * Runs each evaluation after the previous one has finished, inside the shell's
 * tenant (AsyncLocalStorage does not carry from one REPL line to the next).
 *
 * @internal
 */
function serializeEval(server: REPLServer, state: ShellState): void {
  const original: REPLEval = server.eval
  let busy = false
  const wrapped: REPLEval = (code, context, file, callback) => {
    const evaluate = () =>
      new Promise<void>((resolve) => {
        busy = true
        const done = () => {
          busy = false
          resolve()
        }
        state.finish = done
        const run = () =>
          original.call(server, code, context, file, (err, result) => {
            callback(err, result)
            done()
          })
        // A fresh top-level context per line, so setCurrentTenant works in the shell.
        runAsTopLevel(state.tenant, run)
      })
    // Idle: evaluate now, so synchronous lines (and multi-line input) behave as in
    // any REPL. Busy with an await: wait for it, in order.
    state.queue = busy ? state.queue.then(evaluate) : evaluate()
  }
  ;(server as { eval: REPLEval }).eval = wrapped
  // A rejected top-level await goes to the REPL's domain and never calls back:
  // end the evaluation there too, or the queue would wait forever.
  const domain = (server as unknown as { _domain?: NodeJS.EventEmitter })._domain
  domain?.on('error', () => state.finish?.())
}

/**
 * Piped input (a script, a test): hands the REPL one line at a time, the next
 * only once the REPL shows its prompt again, so a line that awaits finishes
 * before the next is read, and multi-line input keeps its meaning.
 *
 * @internal
 */
function feedLineByLine(server: REPLServer, input: PassThrough): void {
  const lines: string[] = []
  let ended = false
  let waiting = true
  const next = () => {
    const line = lines.shift()
    if (line !== undefined) {
      waiting = false
      input.write(`${line}\n`)
    } else if (ended) input.end()
    else waiting = true
  }
  const show = server.displayPrompt.bind(server)
  server.displayPrompt = (preserveCursor?: boolean) => {
    show(preserveCursor)
    setImmediate(next)
  }
  const reader = createInterface({ input: process.stdin, crlfDelay: Number.POSITIVE_INFINITY })
  reader.on('line', (line) => {
    lines.push(line)
    if (waiting) next()
  })
  reader.on('close', () => {
    ended = true
    if (waiting) next()
  })
}

/** Looks a tenant up by id or slug and makes it the shell's tenant. @internal */
async function pick(
  store: TenantStore,
  value: string,
  choose: (tenant: Tenant | undefined, id?: string) => void,
): Promise<Tenant> {
  const tenant = await store.find(value)
  if (!tenant) throw new TenantNotFoundError(value)
  choose(tenant)
  return tenant
}

/** `.tenant` and `.tenants`. @internal */
function defineCommands(
  server: REPLServer,
  state: ShellState,
  store: TenantStore,
  choose: (tenant: Tenant | undefined, id?: string) => void,
): void {
  const later = (fn: () => Promise<void>) => {
    state.queue = state.queue.then(async () => {
      try {
        await fn()
      } catch (err) {
        server.output.write(`${(err as Error).message}\n`)
      }
      server.displayPrompt()
    })
  }
  server.defineCommand('tenant', {
    help: 'Pick the tenant later lines run under: .tenant <id|slug>; .tenant - clears it',
    action(value: string) {
      const arg = value.trim()
      later(async () => {
        if (arg === '') {
          server.output.write(
            `${state.tenant === undefined ? 'no tenant' : `tenant ${state.tenant} (${state.label})`}\n`,
          )
        } else if (arg === '-') {
          choose(undefined)
          server.output.write('no tenant: scoped queries now fail with MissingTenantError\n')
        } else {
          const t = await pick(store, arg, choose)
          server.output.write(`tenant ${t.id} (${t.slug}, ${t.name}, ${t.status})\n`)
        }
      })
    },
  })
  server.defineCommand('tenants', {
    help: 'List the tenants',
    action() {
      later(async () => {
        for (const t of await store.list())
          server.output.write(`${t.id}\t${t.slug}\t${t.status}\t${t.name}\n`)
      })
    },
  })
}
