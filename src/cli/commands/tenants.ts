import type { Command } from 'commander'
import type { RowtenancyConfig } from '../../config/index.js'
import { BINDING_DEFAULTS } from '../../db/binding-options.js'
import { ConfigError } from '../../errors/index.js'
import type { TableLockMode } from '../../sql/lock-holders.js'
import type { Queryable } from '../../sql/queryable.js'
import { quoteQualified } from '../../sql/quote.js'
import { existingIdType, type Tenant, type TenantIdType, TenantStore } from '../../tenants/index.js'
import { addConfigOptions, type CliContext } from '../context.js'
import { inCommandTransaction, lockTimeoutMs, withLockTimeoutOption } from '../lock-timeout.js'

/**
 * `rowtenancy tenants list|create|suspend|activate|delete`, each in one
 * transaction that waits at most `--lock-timeout` ms (10 s) behind another
 * session's lock, then rolls back and fails naming it.
 *
 * @example
 * ```sh
 * rowtenancy tenants create --slug acme --name "Acme" --domain acme.example.com
 * rowtenancy tenants list --json
 * ```
 */
export function register(program: Command, ctx: CliContext): void {
  const tenants = program.command('tenants').description('list and manage tenants')
  registerList(tenants, ctx)
  registerCreate(tenants, ctx)
  registerStatusChanges(tenants, ctx)
  registerDelete(tenants, ctx)
}

const DEFAULT_ID_TYPE = BINDING_DEFAULTS.tenantIdType

/**
 * Runs `work` on a tenant store inside one transaction on the owner's pool
 * (`--admin-database-url`, else `--database-url`) that waits at most
 * `--lock-timeout` for a lock another session holds on the tenants tables.
 */
async function withStore<T>(
  ctx: CliContext,
  cmd: Command,
  mode: TableLockMode,
  work: (store: TenantStore) => Promise<T>,
  { deletes = false } = {},
): Promise<T> {
  const ms = lockTimeoutMs(cmd.opts().lockTimeout)
  const config: RowtenancyConfig = await ctx.config(cmd)
  const pool = await ctx.pool(config, { url: config.adminDatabaseUrl ?? config.databaseUrl })
  const idType = await storeIdType(pool, config, cmd)
  const schema = config.tenantsSchema
  const tables = [quoteQualified(schema, 'tenants'), quoteQualified(schema, 'tenant_domains')]
  // A delete also waits for the tables that reference tenants (their foreign key checks).
  return inCommandTransaction(pool, ms, { tables, mode, referencing: deletes }, (tx) =>
    work(new TenantStore({ db: tx, idType, schema, ttlMs: 0 })),
  )
}

/**
 * The id type of the tenants table when none was given; one given that is not the table's
 * would misread every id ("expected a UUID" for an id that is right) or create tenants it
 * cannot name.
 */
async function storeIdType(
  pool: Queryable,
  config: RowtenancyConfig,
  cmd: Command,
): Promise<TenantIdType> {
  const found = await existingIdType(pool, config.tenantsSchema)
  const idType = config.tenantIdType
  if (found === undefined || found === idType) return idType
  const given =
    cmd.opts().tenantIdType !== undefined ||
    Boolean(process.env.ROWTENANCY_TENANT_ID_TYPE) ||
    idType !== DEFAULT_ID_TYPE
  if (given) {
    throw new ConfigError(
      `${config.tenantsSchema}.tenants.id is ${found}, but the configuration says ${idType}. ` +
        `Set --tenant-id-type to ${found} (or tenantIdType in the config file), or leave it out.`,
    )
  }
  return found
}

/** A `tenants` subcommand with `--json` and the config options. */
function subcommand(tenants: Command, name: string, description: string): Command {
  return addConfigOptions(
    withLockTimeoutOption(
      tenants.command(name).description(description).option('--json', 'print JSON'),
    ),
    ['databaseUrl', 'adminDatabaseUrl', 'tenantIdType', 'tenantsSchema'],
  )
}

function show(ctx: CliContext, opts: { json?: boolean }, tenant: Tenant, verb: string): void {
  if (opts.json) ctx.out.json(tenant)
  else ctx.out.line(`${verb} tenant ${tenant.id} (${tenant.slug}, ${tenant.status})`)
}

function registerList(tenants: Command, ctx: CliContext): void {
  subcommand(tenants, 'list', 'list tenants')
    .option('--status <status>', 'only tenants with this status (active, suspended)')
    .action(async (opts: { json?: boolean; status?: 'active' | 'suspended' }, cmd: Command) => {
      const rows = await withStore(ctx, cmd, 'access share', (s) => s.list({ status: opts.status }))
      if (opts.json) ctx.out.json(rows)
      else
        ctx.out.table(
          rows.map((t) => ({
            id: t.id,
            slug: t.slug,
            name: t.name,
            status: t.status,
            domains: t.domains,
          })),
        )
    })
}

type CreateFlags = { json?: boolean; slug: string; name: string; id?: string; domain?: string[] }

function registerCreate(tenants: Command, ctx: CliContext): void {
  subcommand(tenants, 'create', 'create a tenant')
    .requiredOption('--slug <slug>', 'unique slug (a-z, 0-9, -)')
    .requiredOption('--name <name>', 'display name')
    .option('--id <id>', 'explicit id (required for text ids)')
    .option('--domain <domain...>', 'domains of the tenant')
    .action(async (opts: CreateFlags, cmd: Command) => {
      const tenant = await withStore(ctx, cmd, 'row exclusive', (s) =>
        s.create({ id: opts.id, slug: opts.slug, name: opts.name, domains: opts.domain }),
      )
      show(ctx, opts, tenant, 'created')
    })
}

function registerStatusChanges(tenants: Command, ctx: CliContext): void {
  for (const [verb, past] of [
    ['suspend', 'suspended'],
    ['activate', 'activated'],
  ] as const) {
    subcommand(tenants, `${verb} <id>`, `${verb} a tenant`).action(
      async (id: string, opts: { json?: boolean }, cmd: Command) => {
        const tenant = await withStore(ctx, cmd, 'row exclusive', (s) =>
          verb === 'suspend' ? s.suspend(id) : s.activate(id),
        )
        show(ctx, opts, tenant, past)
      },
    )
  }
}

function registerDelete(tenants: Command, ctx: CliContext): void {
  subcommand(tenants, 'delete <id>', 'delete a tenant that owns no rows')
    .requiredOption('--yes', 'confirm the deletion')
    .action(async (id: string, opts: { json?: boolean }, cmd: Command) => {
      await withStore(ctx, cmd, 'row exclusive', (s) => s.delete(id), { deletes: true })
      if (opts.json) ctx.out.json({ deleted: id })
      else ctx.out.line(`deleted tenant ${id}`)
    })
}
