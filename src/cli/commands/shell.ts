import { userInfo } from 'node:os'
import type { Command } from 'commander'
import type pg from 'pg'
import type { RowtenancyConfig } from '../../config/index.js'
import {
  inspectRuntimeRole,
  type RuntimeRoleFacts,
  runtimeRoleProblems,
} from '../../db/role-check.js'
import { ConfigError } from '../../errors/index.js'
import { discoverTenantTables } from '../../schema/rls-apply.js'
import type { TableInput } from '../../schema/table-registry.js'
import { quoteIdent } from '../../sql/quote.js'
import { hidePasswords } from '../../sql/redact.js'
import { createTenancy } from '../../tenancy/index.js'
import { TenantStore } from '../../tenants/index.js'
import { addConfigOptions, type CliContext } from '../context.js'
import { runShellRepl } from '../repl.js'
import { assertTenantTablesFound } from '../tenant-tables.js'

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
  command.action(async (opts: ShellFlags, cmd: Command) => {
    const config = await ctx.config(cmd)
    const pool = await ctx.pool(config)
    const adminPool = config.adminDatabaseUrl
      ? await ctx.pool(config, { url: config.adminDatabaseUrl, max: 4 })
      : pool
    const tables = await shellTables(pool, config)
    const tenancy = createTenancy({
      pool,
      adminPool,
      tables,
      tenantIdType: config.tenantIdType,
      tenantColumn: config.tenantColumn,
      allowUnsafeRole: opts.allowUnsafeRole === true,
    })
    // (after createTenancy, which refuses a malformed name such as a.b.c)
    await assertTablesExist(adminPool, config)
    const store = new TenantStore({
      db: adminPool,
      idType: config.tenantIdType,
      schema: config.tenantsSchema,
      ttlMs: 0,
    })
    const facts = await inspectRuntimeRole(pool, { tenantColumn: config.tenantColumn })
    printBanner(ctx, { config, facts, tables, separateAdmin: adminPool !== pool, opts })
    await runShellRepl({
      tenancy,
      store,
      pool,
      actor: `shell:${userInfo().username}`,
      idType: config.tenantIdType,
      ...(opts.tenant === undefined ? {} : { tenant: opts.tenant }),
    })
  })
}

type ShellFlags = { tenant?: string; allowUnsafeRole?: boolean }

/** The tenant-aware tables: `--tables`, else every table with the tenant column. */
async function shellTables(pool: pg.Pool, config: RowtenancyConfig): Promise<TableInput[]> {
  const tables: TableInput[] =
    config.tables.length > 0
      ? config.tables
      : (await discoverTenantTables(pool, { tenantColumn: config.tenantColumn })).map((t) =>
          t.schema === 'public' ? t.name : t,
        )
  await assertTenantTablesFound(pool, tables, 'shell', config.tenantColumn)
  return tables
}

/** `--tables` names tables that exist (a typo would only fail at the first query, in the REPL). */
async function assertTablesExist(pool: pg.Pool, config: RowtenancyConfig): Promise<void> {
  if (config.tables.length === 0) return
  const quoted = config.tables.map((t) => t.split('.').map(quoteIdent).join('.'))
  const { rows } = await pool.query(
    'select i from unnest($1::text[]) with ordinality as x(t, i) where pg_catalog.to_regclass(t) is null',
    [quoted],
  )
  const missing = rows.map((r: { i: string }) => config.tables[Number(r.i) - 1])
  if (missing.length > 0) {
    throw new ConfigError(
      `No such table: ${missing.join(', ')} (from \`tables\`). Name the tenant-aware tables that exist ` +
        '(schema.table), or leave --tables out to use every table with the tenant column.',
    )
  }
}

/** What the shell runs on, the role's problems, and what is preloaded (on stderr). */
function printBanner(
  ctx: CliContext,
  shell: {
    config: RowtenancyConfig
    facts: RuntimeRoleFacts
    tables: readonly TableInput[]
    separateAdmin: boolean
    opts: ShellFlags
  },
): void {
  const { config, facts, tables, separateAdmin, opts } = shell
  ctx.out.warn(
    `rowtenancy shell on ${hidePasswords(config.databaseUrl ?? '')} as ${facts.role}` +
      (separateAdmin ? ` (allObjects on ${hidePasswords(config.adminDatabaseUrl ?? '')})` : ''),
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
}
