import type { Command } from 'commander'
import type { RowtenancyConfig } from '../../config/config-keys.js'
import { InvalidInputError } from '../../errors/index.js'
import {
  assertExisting,
  disableRls,
  enableRls,
  rlsStatus,
  type TableKeyedElsewhere,
  tenantTableDiscovery,
  withDescendants,
} from '../../schema/rls-apply.js'
import { parseTableRef, type TableRef } from '../../schema/rls-policy.js'
import { renderTable } from '../../schema/rls-render.js'
import { assertSealKey, installSeal, SEAL_SCHEMA } from '../../schema/rls-sealed.js'
import type { Queryable } from '../../sql/queryable.js'
import { quoteQualified } from '../../sql/quote.js'
import { addConfigOptions, type CliContext } from '../context.js'
import { inCommandTransaction, lockTimeoutMs, withLockTimeoutOption } from '../lock-timeout.js'
import { assertTenantTablesFound } from '../tenant-tables.js'

const KEYS = ['databaseUrl', 'adminDatabaseUrl', 'tenantIdType', 'tenantColumn', 'tables'] as const

/**
 * `rowtenancy rls enable|disable|status`: applies, removes or shows the row
 * level security of the tenant-aware tables (config `tables`, or every table
 * with the tenant column). A named table that does not exist, or no tenant-aware
 * table at all, is an error. Enable and disable are idempotent and run in one
 * transaction that waits at most `--lock-timeout` ms (10 s) for a lock another
 * session holds; run them as the owner (`--admin-database-url`).
 *
 * @example
 * ```sh
 * rowtenancy rls enable --admin-database-url postgres://owner@localhost/app --tables accounts,transactions
 * rowtenancy rls status --json
 * ROWTENANCY_SEAL_KEY=... rowtenancy rls enable --sealed   # sealed policies (docs/binding.md)
 * ```
 */
export function register(program: Command, ctx: CliContext): void {
  const rls = program
    .command('rls')
    .description('row level security of the tenant-aware tables: enable, disable, status')

  const sub = (name: string, description: string) => {
    const command = rls.command(name).description(description).option('--json', 'print JSON')
    if (name !== 'status') withLockTimeoutOption(command)
    addConfigOptions(command, KEYS)
    return command
  }

  const apply =
    (change: typeof enableRls, done: 'enabled' | 'disabled') =>
    async (opts: { json?: boolean; sealed?: boolean; lockTimeout?: string }, cmd: Command) => {
      const ms = lockTimeoutMs(opts.lockTimeout)
      // The key comes from the environment only (never a flag: shell history, ps).
      const key = opts.sealed ? sealKeyFromEnv() : undefined
      const { pool, tables, config, leftOut } = await open(ctx, cmd)
      // The seal and the policies in one transaction: a table busy past --lock-timeout leaves none
      // of it. The seal's key table is locked too (re-keyed) and its holders named.
      const locked = tables.map(renderTable)
      if (key !== undefined) locked.push(quoteQualified(SEAL_SCHEMA, 'key'))
      const what = { tables: locked, mode: 'access exclusive' } as const
      const result = await inCommandTransaction(pool, ms, what, async (tx) => {
        if (key !== undefined) await installSeal(tx, { key })
        return change(tx, tables, policyOptions(config, opts.sealed))
      })
      if (opts.json) ctx.out.json(result)
      else {
        for (const t of result.changed) ctx.out.line(`${done.padEnd(10)} ${t}`)
        for (const t of result.unchanged) ctx.out.line(`unchanged  ${t} (already ${done})`)
        for (const t of leftOut) {
          ctx.out.line(
            `left out   ${t.qualified} (its ${config.tenantColumn} only keys ${t.references}, not tenants: ` +
              'name it in --tables to include it; rowtenancy doctor reports it)',
          )
        }
      }
    }

  sub('enable', 'ENABLE + FORCE row level security and the tenant policy (idempotent)')
    .option(
      '--sealed',
      'sealed policies: honour only a tenant bound by rowtenancy (binding: sealed); key from ROWTENANCY_SEAL_KEY',
    )
    .action(apply(enableRls, 'enabled'))

  sub('disable', 'drop the tenant policy, NO FORCE and DISABLE row level security').action(
    apply(disableRls, 'disabled'),
  )

  sub('status', 'show enabled / forced / policy for each tenant-aware table')
    .option('--sealed', 'expect the sealed policies (rls enable --sealed)')
    .action(async (opts: { json?: boolean; sealed?: boolean }, cmd: Command) => {
      const { pool, tables, config } = await open(ctx, cmd)
      const options = policyOptions(config, opts.sealed)
      const named = await rlsStatus(pool, tables, options)
      // the partitions and inheritance children too: each needs its own policy (rls enable adds it)
      const all = await withDescendants(pool, tables, new Set(named.map((s) => s.table)))
      const status = all.length === tables.length ? named : await rlsStatus(pool, all, options)
      if (opts.json) ctx.out.json(status)
      else ctx.out.table(status.map((s) => ({ ...s })))
    })
}

function sealKeyFromEnv(): string {
  const key = process.env.ROWTENANCY_SEAL_KEY
  try {
    assertSealKey(key, 'ROWTENANCY_SEAL_KEY')
  } catch (err) {
    throw new InvalidInputError(
      `--sealed needs the seal key in the environment: ${(err as Error).message}`,
      { cause: err },
    )
  }
  return key
}

async function open(
  ctx: CliContext,
  cmd: Command,
): Promise<{
  pool: Queryable
  tables: TableRef[]
  config: RowtenancyConfig
  /** The tables with the tenant column that discovery left out (none when tables are named). */
  leftOut: TableKeyedElsewhere[]
}> {
  const config = await ctx.config(cmd)
  const pool = await ctx.pool(config, {
    url: config.adminDatabaseUrl ?? config.databaseUrl,
    max: 2,
  })
  const named = config.tables.map((t) => parseTableRef(t))
  const found =
    named.length > 0
      ? { tables: named, keyedElsewhere: [] }
      : await tenantTableDiscovery(pool, { tenantColumn: config.tenantColumn })
  const tables = found.tables
  // A named table that does not exist, or none found: an error before anything is changed
  // (also for `rls status`: a table that is not there has no row level security to show).
  if (named.length > 0) assertExisting(await rlsStatus(pool, named, policyOptions(config)))
  else await assertTenantTablesFound(pool, tables, `rls ${cmd.name()}`, config.tenantColumn)
  const leftOut = found.keyedElsewhere
  return { pool, tables, config, leftOut }
}

function policyOptions(config: RowtenancyConfig, sealed = false) {
  return { tenantColumn: config.tenantColumn, tenantIdType: config.tenantIdType, sealed }
}
