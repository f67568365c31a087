import type { RowtenancyConfig } from '../../config/index.js'
import { MigrationError } from '../../errors/index.js'
import { migrateOnline, type OnlineEvent } from '../../migrate/online/index.js'
import type { ConnectableQueryable } from '../../sql/queryable.js'
import type { CliContext } from '../context.js'
import { planOptionsFrom } from '../migration-options.js'
import { wholeNumberFlag } from '../numbers.js'

/** The flags of `migrate-to-row-tenancy --online`. @internal */
export interface OnlineFlags {
  readonly all?: boolean
  readonly tenantId?: string[]
  readonly model?: string[]
  readonly dryRun?: boolean
  readonly json?: boolean
  readonly progress?: boolean
  readonly fenceTimeout?: string
  readonly grantTo?: string
  readonly prepare?: boolean
}

/**
 * Checks the flags that only mean something with `--online` (before anything
 * is connected): `--fence-timeout`, `--grant-to`, `--prepare` need it; `--dry-run`
 * and `--model` do not go with it.
 *
 * @internal
 */
export function checkOnlineFlags(opts: OnlineFlags & { online?: boolean }): number | undefined {
  if (!opts.online) {
    for (const [flag, set] of [
      ['--fence-timeout', opts.fenceTimeout !== undefined],
      ['--grant-to', opts.grantTo !== undefined],
      ['--prepare', opts.prepare === true],
    ] as const) {
      if (set)
        throw new MigrationError(`${flag} goes with --online (migrate while the app serves).`)
    }
    return undefined
  }
  if (opts.dryRun) {
    throw new MigrationError(
      '--dry-run and --online do not go together: run --dry-run alone first, it writes nothing.',
    )
  }
  if ((opts.model ?? []).length > 0) {
    throw new MigrationError(
      '--online moves whole tenants (their placement flips at once): leave out --model.',
    )
  }
  return fenceTimeoutFlag(opts.fenceTimeout)
}

/**
 * `--fence-timeout` of `migrate --online` and `rollback --online`: 5000 when not
 * given, else milliseconds from 1 to 600000.
 *
 * @internal
 */
export function fenceTimeoutFlag(raw: string | undefined): number {
  if (raw === undefined) return 5_000
  return wholeNumberFlag('--fence-timeout', raw, {
    min: 1,
    max: 600_000,
    example: 3000,
    unit: 'milliseconds',
  })
}

/**
 * `migrate-to-row-tenancy --online`: progress per tenant on stderr (`tenant 7:
 * copying / catching up / fenced / done (fence 41 ms)`), `--json`: one event per
 * line on stdout, the last `{"type":"report",...}`; exits 1 when a tenant failed.
 *
 * @internal
 */
export async function runOnline(
  ctx: CliContext,
  config: RowtenancyConfig,
  pool: ConnectableQueryable,
  opts: OnlineFlags,
  fenceTimeoutMs: number,
): Promise<void> {
  const json = (value: unknown) => ctx.out.line(JSON.stringify(value))
  const quiet = opts.progress === false
  const onEvent = (e: OnlineEvent) => {
    if (opts.json) return json(e)
    if (quiet) return
    process.stderr.write(`${describe(e)}\n`)
  }
  const report = await migrateOnline({
    ...planOptionsFrom(config),
    db: pool,
    all: Boolean(opts.all),
    tenantIds: opts.tenantId ?? [],
    idStrategy: config.idStrategy,
    jobs: config.jobs,
    fenceTimeoutMs,
    ...(opts.grantTo !== undefined ? { grantTo: opts.grantTo } : {}),
    prepareOnly: Boolean(opts.prepare),
    onEvent,
  })
  if (opts.json) json({ type: 'report', ...report })
  else {
    const n = (s: string) => report.tenants.filter((t) => t.status === s).length
    ctx.out.line(
      `online: ${n('migrated')} cut over, ${n('already-shared')} already on the shared tables, ` +
        `${n('prepared')} prepared, ${n('blocked')} blocked, ${n('failed')} failed in ${(report.ms / 1000).toFixed(1)} s`,
    )
    for (const t of report.tenants) {
      if (t.warning) ctx.out.line(`warning: tenant ${t.tenantId}: ${t.warning}`)
    }
    const f = report.fence
    if (f.count > 0) {
      ctx.out.line(
        `fence per tenant: p50 ${f.p50.toFixed(0)} ms, p95 ${f.p95.toFixed(0)} ms, max ${f.max.toFixed(0)} ms (${f.count} tenants)`,
      )
    }
    for (const t of report.tenants) {
      if (t.error) ctx.out.line(`tenant ${t.tenantId} (${t.schema}): ${t.status}: ${t.error}`)
    }
  }
  if (!report.ok) {
    throw new MigrationError(
      'Some tenants were not cut over (see above); they are still served from their schemas. ' +
        'Fix them and rerun: finished tenants are skipped.',
    )
  }
}

function describe(e: OnlineEvent): string {
  if (e.type === 'online-plan') {
    return `online: ${e.tenants} tenants, ${e.onSchema} on their schemas to cut over, ${e.blocked} blocked`
  }
  if (e.type === 'online-finished') return `online: finished (${e.ok ? 'ok' : 'with failures'})`
  const phase = e.phase === 'catching-up' ? 'catching up' : e.phase
  if (e.phase === 'done')
    return `tenant ${e.tenantId}: done (fence ${e.fenceMs} ms, ${e.applied} changes caught up)`
  if (e.phase === 'failed') return `tenant ${e.tenantId}: failed: ${e.error}`
  return `tenant ${e.tenantId}: ${phase}`
}
