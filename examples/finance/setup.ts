import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { quoteIdent, quoteLiteral } from '../../src/entries/index.js'
import { installAuditLog } from '../../src/entries/kysely.js'
import { FINANCE_TABLES } from './db.js'
import { generateLegacy, type LegacySummary } from './legacy/generate.js'

/** The CLI entry the demo runs as a child process, exactly as a user would. @internal */
export const CLI_ENTRY = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url))

/**
 * Options of {@link setupFinanceDemo}.
 *
 * @example
 * ```ts
 * const options: FinanceSetupOptions = { ownerUrl, tenants: 40, runtimeRole: 'finance_app' }
 * ```
 */
export interface FinanceSetupOptions {
  /** An owner (superuser or database owner) connection to a fresh database. */
  readonly ownerUrl: string
  readonly tenants: number
  readonly seed?: number
  readonly scale?: number
  /** Tenants migrated at once (`--jobs`); 2 by default. */
  readonly jobs?: number
  /** The runtime role to create: LOGIN, owns nothing, no BYPASSRLS. */
  readonly runtimeRole: string
  /** Where step headings go; `console.log` by default. */
  readonly log?: (line: string) => void
  /** The database is a Citus coordinator: `rowtenancy citus distribute` runs before the migration. */
  readonly citus?: boolean
}

/**
 * What {@link setupFinanceDemo} made: the legacy summary, the runtime role's
 * URL, and how long each step took.
 *
 * @example
 * ```ts
 * const { runtimeUrl, timings } = await setupFinanceDemo(options)
 * ```
 */
export interface FinanceSetup {
  readonly legacy: LegacySummary
  readonly runtimeUrl: string
  readonly templateSchema: string
  readonly timings: readonly { step: string; ms: number }[]
}

/**
 * Runs `rowtenancy <args>` as a child process (stdout and stderr shown as they
 * come, so the progress bars draw), with `DATABASE_URL` set to the owner.
 *
 * @example
 * ```ts
 * await runRowtenancy(['verify'], ownerUrl)
 * ```
 */
export function runRowtenancy(args: readonly string[], ownerUrl: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CLI_ENTRY, ...args], {
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, DATABASE_URL: ownerUrl },
    })
    child.on('error', reject)
    child.on('exit', (code, signal) =>
      code === 0
        ? resolve()
        : reject(new Error(`rowtenancy ${args.join(' ')} exited with ${signal ?? code}`)),
    )
  })
}

/**
 * The demo's story on one fresh database: a legacy schema-per-tenant database
 * is generated; `rowtenancy init` installs the tenants tables and the runtime
 * role; `rowtenancy schema generate --apply` derives the shared tables (with RLS)
 * from one tenant's schema; `rowtenancy migrate-to-row-tenancy --all` moves every
 * tenant; `rowtenancy verify` checks them; `rowtenancy doctor` audits the
 * isolation. The runtime role gets a password so
 * the API can log in as it, and the audit log is installed for `allObjects`.
 *
 * @example
 * ```ts
 * const setup = await setupFinanceDemo({ ownerUrl, tenants: 40, runtimeRole: 'finance_app' })
 * const api = await startFinanceApi({ runtimeUrl: setup.runtimeUrl, ownerUrl, adminToken })
 * ```
 */
export async function setupFinanceDemo(options: FinanceSetupOptions): Promise<FinanceSetup> {
  const log = options.log ?? ((line: string) => console.log(line))
  const timings: { step: string; ms: number }[] = []
  const timed = async <T>(step: string, fn: () => Promise<T>): Promise<T> => {
    const started = performance.now()
    const result = await fn()
    timings.push({ step, ms: performance.now() - started })
    return result
  }
  const cli = (args: string[]) => {
    log(`\n$ rowtenancy ${args.join(' ')}`)
    return timed(`rowtenancy ${args[0]}`, () => runRowtenancy(args, options.ownerUrl))
  }
  const owner = new pg.Pool({ connectionString: options.ownerUrl, max: 6 })
  try {
    log(`\n# 1. The legacy app: one schema per tenant (django-tenants layout)`)
    const legacy = await timed('generate legacy', () =>
      generateLegacy(owner, {
        tenants: options.tenants,
        seed: options.seed ?? 1,
        scale: options.scale ?? 1,
      }),
    )
    const { users, accounts, transactions } = legacy.totals
    log(
      `generated ${legacy.tenants.length} tenant schemas (public.customers_client, customers_domain): ` +
        `${users} users, ${accounts} accounts, ${transactions} transactions in ${(legacy.ms / 1000).toFixed(1)} s`,
    )
    const template = legacy.tenants[0]!.schema
    log(`\n# 2. The row-level target: tenants table, runtime role, shared tables from ${template}`)
    await cli(['init', '--runtime-role', options.runtimeRole])
    await cli(['schema', 'generate', '--from-schema', template, '--apply'])
    if (options.citus) {
      log(
        `\n# 2b. Citus: tenants and shared tables become reference tables, the rest is sharded by tenant_id`,
      )
      // `citus distribute` refuses ON DELETE SET NULL (col) on a key holding tenant_id
      // (Citus does not support it between distributed tables) and prints this fix;
      // the API never deletes a user, so NO ACTION changes nothing it does.
      log(
        'Citus refuses ON DELETE SET NULL (owner_id / created_by_id) on tenant keys: they become NO ACTION',
      )
      await owner.query(`alter table finance_account drop constraint finance_account_owner_id_fkey,
        add constraint finance_account_owner_id_fkey foreign key (tenant_id, owner_id) references auth_user (tenant_id, id)`)
      await owner.query(`alter table finance_transaction drop constraint finance_transaction_created_by_id_fkey,
        add constraint finance_transaction_created_by_id_fkey foreign key (tenant_id, created_by_id) references auth_user (tenant_id, id)`)
      await cli(['citus', 'distribute'])
    }
    log(`\n# 3. Move every tenant, then check every row`)
    await cli(['migrate-to-row-tenancy', '--all', '--jobs', String(options.jobs ?? 2)])
    await cli(['verify'])
    log(`\n# 4. Audit the isolation: RLS forced, tenant-first keys, a runtime role RLS binds`)
    await cli([
      'doctor',
      '--runtime-role',
      options.runtimeRole,
      '--tables',
      FINANCE_TABLES.join(','),
    ])
    const password = randomBytes(12).toString('hex')
    await owner.query(
      `alter role ${quoteIdent(options.runtimeRole)} login password ${quoteLiteral(password)}`,
    )
    await installAuditLog(owner)
    const runtime = new URL(options.ownerUrl)
    runtime.username = options.runtimeRole
    runtime.password = password
    return { legacy, runtimeUrl: runtime.toString(), templateSchema: template, timings }
  } finally {
    await owner.end()
  }
}
