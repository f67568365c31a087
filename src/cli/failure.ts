import { TenancyError } from '../errors/index.js'
import { hidePasswords } from '../sql/redact.js'
import { isSocketErrorCode } from '../sql/socket-errors.js'
import { withFlags } from './flags.js'
import { rolledBack } from './lock-timeout.js'

/**
 * Whether the user asked for stack traces: `DEBUG=rowtenancy` (the `debug`
 * package's convention: a comma- or space-separated list, `rowtenancy*` and `*`
 * match too).
 *
 * @example
 * ```ts
 * debugWanted({ DEBUG: 'express:*,rowtenancy' }) // true
 * ```
 */
export function debugWanted(env: NodeJS.ProcessEnv = process.env): boolean {
  return (env.DEBUG ?? '')
    .split(/[\s,]+/)
    .some((name) => name === '*' || name === 'rowtenancy' || name === 'rowtenancy*')
}

/** The fields of a `pg` error (a `DatabaseError`) that the message shows. */
interface PgFields {
  readonly code?: unknown
  readonly detail?: unknown
  readonly hint?: unknown
  readonly severity?: unknown
  readonly address?: unknown
  readonly port?: unknown
  readonly syscall?: unknown
  readonly path?: unknown
}

/**
 * What the CLI prints for a command that failed: one line for our own errors
 * (`error [CODE]: message`), one clear line for anything else (a PostgreSQL
 * error with its SQLSTATE, detail and hint; a network error with the host and
 * port; a file system error with its path; an internal error saying how to see
 * its stack), and the stack traces only with `debug`. No connection password
 * is ever shown (every line goes through `hidePasswords`).
 *
 * @example
 * ```ts
 * describeFailure(pgError, false)
 * // ['error [PG_42501]: must be owner of table accounts (PostgreSQL error 42501). The command stopped there; ...
 * //   Connect as a role that may do this (the tables\' owner: --admin-database-url). Rerun with DEBUG=rowtenancy ...']
 * ```
 */
export function describeFailure(err: unknown, debug: boolean): string[] {
  const lines = [headline(err)]
  if (debug) {
    for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as Error).cause, depth++) {
      const stack = e instanceof Error ? e.stack : String(e)
      if (stack) lines.push(depth === 0 ? stack : `caused by: ${stack}`)
    }
  }
  return lines.map(hidePasswords)
}

function headline(err: unknown): string {
  if (err instanceof TenancyError) return `error [${err.code}]: ${withFlags(err.message)}`
  const e = (err ?? {}) as Error & PgFields
  const message = typeof e.message === 'string' && e.message ? e.message : String(err)
  const code = typeof e.code === 'string' ? e.code : undefined
  // A PostgreSQL error: its SQLSTATE has five characters (a `severity` comes with it).
  if (code && /^[0-9A-Z]{5}$/.test(code) && typeof e.severity === 'string') {
    const more = [
      typeof e.detail === 'string' && e.detail ? `detail: ${e.detail}` : '',
      typeof e.hint === 'string' && e.hint ? `hint: ${e.hint}` : '',
    ].filter(Boolean)
    return (
      `error [PG_${code}]: ${message} (PostgreSQL error ${code}${more.length ? `; ${more.join('; ')}` : ''}). ` +
      (rolledBack(err)
        ? 'The command stopped there and its transaction was rolled back: nothing was changed. '
        : 'The command stopped there; what it committed before stays (see the command in docs/cli.md for what a rerun does). ') +
      `${pgAdvice(code)}Rerun with DEBUG=rowtenancy for the stack trace.`
    )
  }
  // A network error of Node (ECONNREFUSED, ENOTFOUND, ...; any error of a connect, such as
  // EACCES on a Unix socket): where, and what to check.
  const systemCode = code !== undefined && /^E[A-Z]+$/.test(code) // not Node's own ERR_* (a bug)
  if (
    code &&
    (isSocketErrorCode(code) ||
      (systemCode && (e.syscall === 'connect' || typeof e.address === 'string')))
  ) {
    const where =
      typeof e.address === 'string'
        ? ` (${e.address}${typeof e.port === 'number' ? `:${e.port}` : ''})`
        : ''
    return (
      `error [${code}]: ${message}${where}. Check that PostgreSQL runs and listens on that host and ` +
      'port, and the host and port of --database-url (or DATABASE_URL). Rerun with DEBUG=rowtenancy for the stack trace.'
    )
  }
  // Any other system error (ENOSPC, EACCES, ENOENT, ...): a file the command reads or writes.
  if (code && systemCode) {
    const where = typeof e.path === 'string' ? ` (path ${e.path})` : ''
    return (
      `error [${code}]: ${message}${where}. A file system problem, not a database one: check that ` +
      'the path exists, that you may read or write it, and the free disk space. Rerun with DEBUG=rowtenancy for the stack trace.'
    )
  }
  const kind = err instanceof Error ? err.name : typeof err
  return (
    `error [INTERNAL]: ${kind}: ${message}. This is a bug in rowtenancy, not in your input: rerun ` +
    'with DEBUG=rowtenancy for the stack trace and report it.'
  )
}

/** What to check for the SQLSTATE classes a CLI user can act on. */
function pgAdvice(code: string): string {
  if (code === '42501' || code.startsWith('28')) {
    return "Connect as a role that may do this (the tables' owner: --admin-database-url). "
  }
  if (code === '42P01' || code === '3F000' || code === '42703') {
    return 'Check the names in your flags and config (schemas, tables, columns), and that `rowtenancy init` and your migrations ran. '
  }
  return ''
}
