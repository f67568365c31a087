import type { Command } from 'commander'
import { auditTableName, installAuditLog } from '../../audit/index.js'
import { assertGrantableRole, assertSchemasExist, grantRuntimeRole } from '../../schema/roles.js'
import { quoteIdent, quoteQualified } from '../../sql/quote.js'
import { installTenantTables } from '../../tenants/index.js'
import { addConfigOptions, type CliContext } from '../context.js'
import { inCommandTransaction, lockTimeoutMs, withLockTimeoutOption } from '../lock-timeout.js'

/**
 * `rowtenancy init`: installs the tenants tables and the audit log (idempotent),
 * and with `--runtime-role` the runtime role's grants, all in one transaction
 * that waits at most `--lock-timeout` ms (10 s) for a lock another session holds.
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
  withLockTimeoutOption(command)
  command.action(async (opts: { json?: boolean; lockTimeout?: string }, cmd: Command) => {
    const ms = lockTimeoutMs(opts.lockTimeout)
    const config = await ctx.config(cmd)
    const pool = await ctx.pool(config, { url: config.adminDatabaseUrl ?? config.databaseUrl })
    const schemas = [...new Set([config.tenantsSchema, config.targetSchema])]
    const auditTable =
      config.tenantsSchema === 'public' ? 'audit_log' : `${config.tenantsSchema}.audit_log`
    const tables = [
      quoteQualified(config.tenantsSchema, 'tenants'),
      quoteQualified(config.tenantsSchema, 'tenant_domains'),
      auditTableName(auditTable).quoted,
    ]
    // One transaction: a refusal, or a table busy past --lock-timeout, leaves nothing installed.
    const role = await inCommandTransaction(
      pool,
      ms,
      { tables, mode: 'access exclusive' },
      async (tx) => {
        // An unsafe runtime role, or a schema to grant it on that does not exist (the tenants
        // schema init creates), is refused before anything is installed. Without --runtime-role
        // the target schema is not looked at: `schema generate --apply` creates it after init.
        if (config.runtimeRole) {
          await assertGrantableRole(tx, config.runtimeRole)
          await assertSchemasExist(
            tx,
            schemas.filter((s) => s !== config.tenantsSchema),
            'or run `rowtenancy init` without --runtime-role first, create the shared tables ' +
              '(rowtenancy schema generate --apply, or your migrations), then run init --runtime-role ' +
              'again. Nothing was installed or granted.',
          )
        }
        await installTenantTables(tx, { idType: config.tenantIdType, schema: config.tenantsSchema })
        await installAuditLog(tx, { table: auditTable })
        const role = config.runtimeRole
          ? await grantRuntimeRole(tx, { role: config.runtimeRole, schemas })
          : undefined
        // The audit log is the owner's: records are written on the admin pool, and a tenant's code
        // on the runtime role must neither read another tenant's records nor forge or change any.
        if (role) {
          await tx.query(
            `revoke select, insert, update, delete, truncate on ${auditTableName(auditTable).quoted} from ${quoteIdent(role.role)}`,
          )
        }
        return role
      },
    )
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
