import { createInterface } from 'node:readline'
import { type REPLEval, type REPLServer, start as startRepl } from 'node:repl'
import { PassThrough } from 'node:stream'
import { sql } from 'kysely'
import {
  clearCurrentTenant,
  currentTenant,
  runWithTenant,
  setCurrentTenant,
  type TenantId,
  tryCurrentTenant,
  withoutTenant,
} from '../context/index.js'
import { runAsTopLevel } from '../context/tenant-context.js'
import { TenantNotFoundError } from '../errors/index.js'
import type { Tenancy } from '../tenancy/index.js'
import {
  parseTenantId,
  type Tenant,
  type TenantIdType,
  type TenantStore,
} from '../tenants/index.js'

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

/** What the shell REPL needs: the tenancy and store it preloads, and who it acts as. */
export interface ShellReplOptions {
  readonly tenancy: Tenancy
  readonly store: TenantStore
  readonly pool: unknown
  /** The actor recorded for `allObjects` calls. */
  readonly actor: string
  readonly idType: TenantIdType
  /** The tenant (id or slug) to start with. */
  readonly tenant?: string
}

/**
 * Runs the REPL of `rowtenancy shell` until it exits: preloads, the tenant each
 * line runs under, `.tenant` / `.tenants`, and line-by-line feeding of piped input.
 */
export async function runShellRepl(options: ShellReplOptions): Promise<void> {
  const state: ShellState = {
    tenant: undefined,
    label: undefined,
    queue: Promise.resolve(),
    finish: undefined,
  }
  const promptFor = () =>
    state.label === undefined ? 'rowtenancy> ' : `rowtenancy(${state.label})> `
  let server: REPLServer | undefined
  const choose = (tenant: Tenant | undefined, id?: string) => {
    state.tenant = tenant?.id ?? id
    state.label = tenant?.slug ?? id
    server?.setPrompt(promptFor())
  }
  if (options.tenant !== undefined) await pick(options.store, options.tenant, choose)
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
    preloads(options.tenancy, options.store, options.pool, options.actor, options.idType, choose),
  )
  serializeEval(server, state)
  defineCommands(server, state, options.store, choose)
  if (!terminal) feedLineByLine(server, input as PassThrough)
  const repl = server
  await new Promise<void>((resolve) => repl.once('exit', resolve))
  await state.queue
  process.stdout.write('\n')
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
