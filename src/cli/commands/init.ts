import type { Command } from 'commander'
import { auditTableName, installAuditLog } from '../../audit/index.js'
import { assertGrantableRole, assertSchemasExist, grantRuntimeRole } from '../../schema/roles.js'
import { quoteIdent } from '../../sql/quote.js'
import { installTenantTables } from '../../tenants/index.js'
import { addConfigOptions, type CliContext } from '../context.js'

/**
 * `rowtenancy init`: installs the tenants tables and the audit log (idempotent),
 * and with `--runtime-role` the runtime role's grants.
 *
 * @example
 * ```sh
 * rowtenancy init --database-url postgres://localhost/app --tenant-id-type uuid
 * ```
 */
export function register(program: Command, ctx: CliContext): void {
  const command = program
    .command('init')
    .description('create the tenants, tenant_domains and audit_log tables (idempotent)')
    .option('--json', 'print the result as JSON')
  addConfigOptions(command, [
    'databaseUrl',
    'adminDatabaseUrl',
    'tenantIdType',
    'tenantsSchema',
    'targetSchema',
    'runtimeRole',
  ])
  command.action(async (opts: { json?: boolean }, cmd: Command) => {
    const config = await ctx.config(cmd)
    const pool = await ctx.pool(config, { url: config.adminDatabaseUrl ?? config.databaseUrl })
    const schemas = [...new Set([config.tenantsSchema, config.targetSchema])]
    // An unsafe runtime role, or a schema to grant on that does not exist (other than the
    // tenants schema, which init creates), is refused before anything is installed.
    if (config.runtimeRole) {
      await assertGrantableRole(pool, config.runtimeRole)
      await assertSchemasExist(
        pool,
        schemas.filter((s) => s !== config.tenantsSchema),
      )
    }
    await installTenantTables(pool, { idType: config.tenantIdType, schema: config.tenantsSchema })
    const auditTable =
      config.tenantsSchema === 'public' ? 'audit_log' : `${config.tenantsSchema}.audit_log`
    await installAuditLog(pool, { table: auditTable })
    const role = config.runtimeRole
      ? await grantRuntimeRole(pool, { role: config.runtimeRole, schemas })
      : undefined
    // The audit log is the owner's: records are written on the admin pool, and a tenant's code
    // on the runtime role must neither read another tenant's records nor forge or change any.
    if (role) {
      await pool.query(
        `revoke select, insert, update, delete, truncate on ${auditTableName(auditTable).quoted} from ${quoteIdent(role.role)}`,
      )
    }
    const result = {
      installed: ['tenants', 'tenant_domains', 'audit_log'],
      schema: config.tenantsSchema,
      idType: config.tenantIdType,
      ...(role ? { runtimeRole: { name: role.role, created: role.created } } : {}),
    }
    if (opts.json) ctx.out.json(result)
    else {
      ctx.out.line(
        `rowtenancy: ${config.tenantsSchema}.tenants, tenant_domains and audit_log are in place (id type ${config.tenantIdType}).`,
      )
      if (role) {
        ctx.out.line(
          `rowtenancy: runtime role ${role.role} ${role.created ? 'created (LOGIN, no password yet: ALTER ROLE ... PASSWORD) and ' : ''}granted DML on ${schemas.join(', ')}.`,
        )
      }
    }
  })
}
