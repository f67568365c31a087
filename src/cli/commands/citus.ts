import type { Command } from 'commander'
import {
  type DistributeResult,
  type DistributionPlan,
  distribute,
  hotTenants,
  type IsolateResult,
  isolateTenant,
  planDistribution,
} from '../../citus/index.js'
import type { RowtenancyConfig } from '../../config/config-keys.js'
import { MigrationError } from '../../errors/index.js'
import { addConfigOptions, type CliContext } from '../context.js'
import { wholeNumberFlag } from '../numbers.js'

const KEYS = [
  'databaseUrl',
  'adminDatabaseUrl',
  'tenantIdType',
  'tenantsSchema',
  'tenantColumn',
  'targetSchema',
] as const

/**
 * `rowtenancy citus distribute|isolate|tenants`: scale a row-level database out
 * on Citus. Run against the coordinator, as the owner (`--admin-database-url`).
 *
 * @example
 * ```sh
 * rowtenancy citus distribute --dry-run
 * rowtenancy citus isolate --tenant-id 7 --to-node 10.0.0.5:5432 --json
 * rowtenancy citus tenants --limit 5
 * ```
 */
export function register(program: Command, ctx: CliContext): void {
  const citus = program
    .command('citus')
    .description(
      'Citus: distribute the tables by tenant, isolate a big tenant, show the hottest tenants',
    )
  registerDistribute(citus, ctx)
  registerIsolate(citus, ctx)
  registerTenants(citus, ctx)
}

type DistributeFlags = { json?: boolean; dryRun?: boolean; keepLocal?: string }
type IsolateFlags = {
  json?: boolean
  dryRun?: boolean
  tenantId: string
  toNode?: string
  transferMode?: string
}
type TenantsFlags = { json?: boolean; dryRun?: boolean; limit?: string }

/** A `citus` subcommand with the options every one of them takes. */
function subcommand(citus: Command, name: string, description: string): Command {
  const command = citus
    .command(name)
    .description(description)
    .option('--json', 'print JSON')
    .option('--dry-run', 'print what would run; change nothing')
  addConfigOptions(command, KEYS)
  return command
}

/** The configuration and a small pool of the owner (`--admin-database-url`, else `--database-url`). */
async function openOwnerPool(ctx: CliContext, cmd: Command) {
  const config = await ctx.config(cmd)
  const pool = await ctx.pool(config, {
    url: config.adminDatabaseUrl ?? config.databaseUrl,
    max: 2,
  })
  return { config, pool }
}

function registerDistribute(citus: Command, ctx: CliContext): void {
  subcommand(
    citus,
    'distribute',
    'reference tables for tenants, tenant_domains and shared tables; every tenant-aware table distributed by the tenant column, co-located, in foreign-key order (idempotent, one transaction)',
  )
    .option(
      '--keep-local <tables>',
      'comma-separated tables without the tenant column to leave local',
    )
    .action(async (opts: DistributeFlags, cmd: Command) => {
      const { config, pool } = await openOwnerPool(ctx, cmd)
      const options = distributeOptions(config, opts.keepLocal)
      const plan = await planDistribution(pool, options)
      if (opts.dryRun || plan.refusals.length > 0) {
        printDistributionPlan(ctx, plan, opts.json)
        if (plan.refusals.length > 0) {
          throw new MigrationError(
            `citus distribute refused ${plan.refusals.length} table problem(s) (listed above); nothing changed.`,
          )
        }
        return
      }
      printDistributed(ctx, await distribute(pool, options), opts.json)
    })
}

function distributeOptions(config: RowtenancyConfig, keepLocal: string | undefined) {
  return {
    schema: config.targetSchema,
    tenantsSchema: config.tenantsSchema,
    tenantColumn: config.tenantColumn,
    keepLocal: keepLocal
      ?.split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  }
}

function printDistributionPlan(ctx: CliContext, plan: DistributionPlan, json?: boolean): void {
  if (json) {
    ctx.out.json({ dryRun: true, ...plan })
    return
  }
  for (const s of plan.steps) {
    ctx.out.line(`${s.action.padEnd(11)} ${s.table}  (${s.reason})`)
    for (const q of s.sql) ctx.out.line(`            ${q}`)
  }
  for (const r of plan.refusals) {
    ctx.out.warn(`REFUSED ${r.table}: ${r.object} ${r.problem}`)
    ctx.out.warn(`        fix: ${r.fix}`)
  }
}

function printDistributed(ctx: CliContext, result: DistributeResult, json?: boolean): void {
  if (json) {
    ctx.out.json(result)
    return
  }
  for (const s of result.plan.steps) ctx.out.line(`${s.action.padEnd(11)} ${s.table}`)
  for (const t of result.keptLocalCopy) {
    ctx.out.warn(`kept the coordinator's hidden copy of ${t}: a local table references it`)
  }
  ctx.out.line(
    result.changed.length === 0
      ? 'rowtenancy citus distribute: nothing to do (already distributed).'
      : `rowtenancy citus distribute: ${result.changed.length} table(s) distributed.`,
  )
}

function registerIsolate(citus: Command, ctx: CliContext): void {
  subcommand(
    citus,
    'isolate',
    'give one tenant a shard of its own (isolate_tenant_to_new_shard ... CASCADE), optionally moved to a node',
  )
    .requiredOption('--tenant-id <id>', 'the tenant to isolate')
    .option('--to-node <host:port>', 'move its new shard to this node (citus_move_shard_placement)')
    .option(
      '--transfer-mode <mode>',
      'shard_transfer_mode: block_writes (default), force_logical, auto',
    )
    .action(async (opts: IsolateFlags, cmd: Command) => {
      const { config, pool } = await openOwnerPool(ctx, cmd)
      const r = await isolateTenant(pool, {
        tenantColumn: config.tenantColumn,
        tenantIdType: config.tenantIdType,
        tenantId: opts.tenantId,
        toNode: opts.toNode,
        transferMode: opts.transferMode as 'block_writes' | undefined,
        dryRun: opts.dryRun,
      })
      if (opts.json) ctx.out.json(r)
      else printIsolation(ctx, r)
    })
}

function printIsolation(ctx: CliContext, r: IsolateResult): void {
  const b = r.before
  ctx.out.line(
    `tenant ${b.tenantId}: shard ${b.shardId} on ${b.node}${b.isolated ? ' (isolated)' : ''}`,
  )
  for (const q of r.sql) ctx.out.line(`${r.dryRun ? 'would run' : 'ran'}: ${q}`)
  if (r.after && r.changed) {
    ctx.out.line(`now: shard ${r.after.shardId} on ${r.after.node} (isolated: ${r.after.isolated})`)
  }
  if (r.sql.length === 0) ctx.out.line('nothing to do.')
}

function registerTenants(citus: Command, ctx: CliContext): void {
  subcommand(citus, 'tenants', 'the hottest tenants (citus_stat_tenants) with their shard and node')
    .option('--limit <n>', 'how many (default 10)')
    .action(async (opts: TenantsFlags, cmd: Command) => {
      const limit =
        opts.limit === undefined
          ? 10
          : wholeNumberFlag('--limit', opts.limit, { min: 1, max: 10_000, example: 5 })
      const { config, pool } = await openOwnerPool(ctx, cmd)
      const r = await hotTenants(pool, { limit, tenantColumn: config.tenantColumn })
      if (opts.json) {
        ctx.out.json({ dryRun: !!opts.dryRun, ...r })
        return
      }
      if (r.tracking !== 'all') {
        ctx.out.warn(
          `citus.stat_tenants_track is '${r.tracking}': Citus counts no tenant. Turn it on: alter system set citus.stat_tenants_track = 'all' on every node, then select pg_reload_conf().`,
        )
      }
      ctx.out.table(r.tenants.map((t) => ({ ...t })))
    })
}
