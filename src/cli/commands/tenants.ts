import type { Command } from 'commander'
import type { RowtenancyConfig } from '../../config/index.js'
import { type Tenant, TenantStore } from '../../tenants/index.js'
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
  const store = async (cmd: Command) => {
    const config: RowtenancyConfig = await ctx.config(cmd)
    const pool = await ctx.pool(config, { url: config.adminDatabaseUrl ?? config.databaseUrl })
    return new TenantStore({
      db: pool,
      idType: config.tenantIdType,
      schema: config.tenantsSchema,
      ttlMs: 0,
    })
  }
  const common = (c: Command) =>
    addConfigOptions(c.option('--json', 'print JSON'), [
      'databaseUrl',
      'adminDatabaseUrl',
      'tenantIdType',
      'tenantsSchema',
    ])
  const show = (opts: { json?: boolean }, tenant: Tenant, verb: string) => {
    if (opts.json) ctx.out.json(tenant)
    else ctx.out.line(`${verb} tenant ${tenant.id} (${tenant.slug}, ${tenant.status})`)
  }

  common(tenants.command('list').description('list tenants'))
    .option('--status <status>', 'only tenants with this status (active, suspended)')
    .action(async (opts: { json?: boolean; status?: 'active' | 'suspended' }, cmd: Command) => {
      const rows = await (await store(cmd)).list({ status: opts.status })
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

  common(tenants.command('create').description('create a tenant'))
    .requiredOption('--slug <slug>', 'unique slug (a-z, 0-9, -)')
    .requiredOption('--name <name>', 'display name')
    .option('--id <id>', 'explicit id (required for text ids)')
    .option('--domain <domain...>', 'domains of the tenant')
    .action(
      async (
        opts: { json?: boolean; slug: string; name: string; id?: string; domain?: string[] },
        cmd: Command,
      ) => {
        const tenant = await (await store(cmd)).create({
          id: opts.id,
          slug: opts.slug,
          name: opts.name,
          domains: opts.domain,
        })
        show(opts, tenant, 'created')
      },
    )

  for (const [verb, past] of [
    ['suspend', 'suspended'],
    ['activate', 'activated'],
  ] as const) {
    common(tenants.command(`${verb} <id>`).description(`${verb} a tenant`)).action(
      async (id: string, opts: { json?: boolean }, cmd: Command) => {
        const s = await store(cmd)
        show(opts, verb === 'suspend' ? await s.suspend(id) : await s.activate(id), past)
      },
    )
  }

  common(tenants.command('delete <id>').description('delete a tenant that owns no rows'))
    .requiredOption('--yes', 'confirm the deletion')
    .action(async (id: string, opts: { json?: boolean }, cmd: Command) => {
      await (await store(cmd)).delete(id)
      if (opts.json) ctx.out.json({ deleted: id })
      else ctx.out.line(`deleted tenant ${id}`)
    })
}
