import type { Command } from 'commander'
import type { RowtenancyConfig } from '../../config/index.js'
import { BINDING_DEFAULTS } from '../../db/binding-options.js'
import { ConfigError } from '../../errors/index.js'
import { existingIdType, type Tenant, TenantStore } from '../../tenants/index.js'
import { addConfigOptions, type CliContext } from '../context.js'

/**
 * `rowtenancy tenants list|create|suspend|activate|delete`.
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

/** The tenant store on the owner's pool (`--admin-database-url`, else `--database-url`). */
async function openStore(ctx: CliContext, cmd: Command): Promise<TenantStore> {
  const config: RowtenancyConfig = await ctx.config(cmd)
  const pool = await ctx.pool(config, { url: config.adminDatabaseUrl ?? config.databaseUrl })
  // The table's id type when none was given; one given that is not the table's would misread
  // every id ("expected a UUID" for an id that is right) or create tenants it cannot name.
  const found = await existingIdType(pool, config.tenantsSchema)
  let idType = config.tenantIdType
  if (found !== undefined && found !== idType) {
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
    idType = found
  }
  return new TenantStore({
    db: pool,
    idType,
    schema: config.tenantsSchema,
    ttlMs: 0,
  })
}

/** A `tenants` subcommand with `--json` and the config options. */
function subcommand(tenants: Command, name: string, description: string): Command {
  return addConfigOptions(
    tenants.command(name).description(description).option('--json', 'print JSON'),
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
      const rows = await (await openStore(ctx, cmd)).list({ status: opts.status })
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
      const tenant = await (await openStore(ctx, cmd)).create({
        id: opts.id,
        slug: opts.slug,
        name: opts.name,
        domains: opts.domain,
      })
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
        const s = await openStore(ctx, cmd)
        show(ctx, opts, verb === 'suspend' ? await s.suspend(id) : await s.activate(id), past)
      },
    )
  }
}

function registerDelete(tenants: Command, ctx: CliContext): void {
  subcommand(tenants, 'delete <id>', 'delete a tenant that owns no rows')
    .requiredOption('--yes', 'confirm the deletion')
    .action(async (id: string, opts: { json?: boolean }, cmd: Command) => {
      await (await openStore(ctx, cmd)).delete(id)
      if (opts.json) ctx.out.json({ deleted: id })
      else ctx.out.line(`deleted tenant ${id}`)
    })
}
