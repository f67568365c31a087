import { MigrationError } from '../../errors/index.js'
import { DEFAULTS } from '../../sql/defaults.js'
import type { ConnectableQueryable, Queryable } from '../../sql/queryable.js'
import { quoteIdent, quoteQualified } from '../../sql/quote.js'
import { fenceKeySql, SERVING_TABLE } from '../../tenants/serving.js'
import { describeCheck } from '../checks.js'
import { sqlContext } from '../copy.js'
import { ownRows, sourceChecksumStatement, targetChecksumStatement } from '../copy-sql.js'
import { lockLedgerEntry, writeLedgerEntry } from '../ledger.js'
import {
  type MigrationPlan,
  type MigrationPlanOptions,
  planMigration,
  type TablePlan,
  type TenantPlan,
} from '../plan.js'
import { adjustSequences } from '../sequences.js'
import { CHANGELOG_TABLE, dropTriggerSql, keyColumns } from './capture-sql.js'
import { legacyTables } from './cutover.js'
import { guardLegacySchema } from './legacy-rls.js'
import { lockTables, TablesBusyError, withLockRetry } from './table-locks.js'

/**
 * Options of {@link rollbackOnline}.
 */
export interface OnlineRollbackOptions extends Omit<MigrationPlanOptions, 'all' | 'tenantIds'> {
  readonly db: ConnectableQueryable
  /** The tenant to move back to its schema (its legacy id). */
  readonly tenantId: string
  /** The longest the rollback waits for the tenant's requests in flight; 5000 ms by default. */
  readonly fenceTimeoutMs?: number | undefined
}

/**
 * Moves one tenant that an online migration cut over back to its legacy schema,
 * while the app keeps serving: under the tenant's fence, in ONE transaction, its
 * legacy tables are brought to the shared rows' state (rows written since the
 * cut-over included), compared (counts and checksums), its shared rows deleted,
 * its capture triggers (which refused writes to the schema since the cut-over)
 * dropped, and its placement flipped to `schema`; the ledger says
 * `rolled_back`. A crash rolls all of it back (the tenant stays on the shared
 * tables). Writers to the shared tables are fenced only through
 * `rowtenancy_enter`: a session that writes them with the plain binding is not.
 *
 * @example
 * ```ts
 * const { fenceMs } = await rollbackOnline({ db: pool, tenantId: '7' })
 * ```
 */
export async function rollbackOnline(options: OnlineRollbackOptions): Promise<{ fenceMs: number }> {
  const client = await options.db.connect()
  try {
    const plan = await planMigration(client, { ...options, tenantIds: [options.tenantId] })
    const tp = plan.tenants[0]
    if (!tp) throw new MigrationError(`Unknown tenant ${options.tenantId}.`)
    const ctx = sqlContext(plan, tp)
    // Its legacy tables busy (the transaction rolled back, the fence lifted): again after a backoff.
    const fenceMs = await withLockRetry(
      `the legacy tables of schema ${JSON.stringify(tp.tenant.schema)}`,
      () => moveBack(client, plan, tp, ctx, options.fenceTimeoutMs ?? 5_000),
      {
        busy: (err) =>
          err instanceof TablesBusyError || (err as { code?: string })?.code === '40P01',
      },
    )
    // Ids written to the shared tables since the cut-over: the legacy sequences move above them.
    await adjustSequences(
      client,
      tp.tenant.schema,
      tp.tables.map((t) => t.name),
    )
    return { fenceMs }
  } finally {
    client.release()
  }
}

/** Under the tenant's fence, in ONE transaction: legacy rows restored, compared, shared rows deleted, placement flipped. */
async function moveBack(
  client: Queryable,
  plan: MigrationPlan,
  tp: TenantPlan,
  ctx: ReturnType<typeof sqlContext>,
  fenceTimeoutMs: number,
): Promise<number> {
  const id = tp.tenant.id
  await client.query('begin')
  try {
    const requested = performance.now()
    await client.query(
      `select set_config('lock_timeout', $1, true), set_config('jit', 'off', true),
              set_config('rowtenancy.tenant_id', $2, true)`,
      [String(fenceTimeoutMs), id],
    )
    await client.query(
      "select pg_advisory_xact_lock(hashtext('rowtenancy.migrate'), hashtext($1))",
      [id],
    )
    await client.query(`select pg_advisory_xact_lock(${fenceKeySql('$1::text')})`, [id])
    const serving = quoteQualified(plan.targetSchema, SERVING_TABLE)
    const placed = await client
      .query(`select placement from ${serving} where tenant_id = $1::${plan.idType}`, [id])
      .catch(() => ({ rows: [] as { placement?: string }[] }))
    if (placed.rows[0]?.placement !== 'shared') {
      throw new MigrationError(
        `Tenant ${id} is not served from the shared tables by an online migration; nothing to move back ` +
          '(an offline migration is undone with `rowtenancy rollback`).',
      )
    }
    // The tenant's hybrid requests are fenced (after the commit, rowtenancy_enter reads the new
    // placement: a request compiled for the shared tables is refused, raw SQL goes to the schema).
    // A session that does not go through the fence may hold a legacy table: all locked now,
    // briefly, never while waiting (the rows are restored and the triggers dropped under it).
    await lockTables(client, legacyTables(ctx, tp), 'access exclusive')
    await client.query("select set_config('lock_timeout', '0', true)")
    // The legacy tables' own triggers and keys stay quiet while their rows are restored.
    await client.query('set local session_replication_role = replica')
    for (const t of [...tp.tables].reverse()) await deleteGone(client, ctx, t, id)
    for (const t of tp.tables) await restore(client, ctx, t, id)
    for (const t of tp.tables) {
      const s = sourceChecksumStatement(ctx, t)
      const d = targetChecksumStatement(ctx, t)
      const src = (await client.query(s.text, s.values)).rows[0]
      const dst = (await client.query(d.text, d.values)).rows[0]
      if (src.n !== dst.n || src.sum !== dst.sum) {
        throw new MigrationError(
          `Moving tenant ${id} back failed verification: ${describeCheck({
            table: t.name,
            sourceRows: Number(src.n),
            targetRows: Number(dst.n),
            sourceChecksum: src.sum,
            targetChecksum: dst.sum,
            orphans: [],
            ok: false,
          })}.`,
        )
      }
    }
    const tc = quoteIdent(plan.tenantColumn)
    for (const t of [...tp.tables].reverse()) {
      await client.query(
        `delete from ${ownRows(plan.targetSchema, t.target)} where ${tc} = $1::${plan.idType}`,
        [id],
      )
    }
    // Served from its schema again: its tables' policy must be there (prepared by an older run).
    await guardLegacySchema(client, tp.tenant.schema, undefined)
    // The capture triggers refused writes to the schema since the cut-over; from the commit on
    // they are its writes again (a writer waiting on the tables now goes ahead after it, to the
    // schema the tenant is served from). A later --online installs them anew.
    for (const t of tp.tables) for (const s of dropTriggerSql(ctx, t)) await client.query(s)
    await client.query(
      `delete from ${quoteQualified(plan.targetSchema, CHANGELOG_TABLE)} where tenant_id = $1`,
      [id],
    )
    await client.query(
      `update ${serving} set placement = 'schema', updated_at = now() where tenant_id = $1::${plan.idType}`,
      [id],
    )
    const entry = await lockLedgerEntry(client, plan.targetSchema, id)
    if (entry) {
      await writeLedgerEntry(client, plan.targetSchema, {
        ...entry,
        state: 'rolled_back',
        tables: {},
        finishedAt: new Date(),
        verifiedAt: null,
        verifyOk: null,
        lastError: null,
      })
    }
    await client.query('commit')
    return performance.now() - requested
  } catch (err) {
    await client.query('rollback').catch(() => {})
    throw err
  }
}

/** Legacy rows the shared table no longer has (deleted since the cut-over). */
async function deleteGone(
  client: Queryable,
  ctx: ReturnType<typeof sqlContext>,
  t: TablePlan,
  id: string,
): Promise<void> {
  const keys = keyColumns(t, id)
  const same = keys.map((k) => `x.${quoteIdent(k)} = s.${quoteIdent(k)}`).join(' and ')
  await client.query(
    `delete from ${t.source.partitioned ? '' : 'only '}${quoteQualified(ctx.sourceSchema, t.name)} s where not exists ` +
      `(select 1 from ${ownRows(ctx.targetSchema, t.target, 'x')} where x.${quoteIdent(ctx.tenantColumn ?? DEFAULTS.tenantColumn)} = $1::${ctx.idType} and ${same})`,
    [id],
  )
}

/** Legacy rows inserted or updated to the shared rows' values. */
async function restore(
  client: Queryable,
  ctx: ReturnType<typeof sqlContext>,
  t: TablePlan,
  id: string,
): Promise<void> {
  const keys = keyColumns(t, id)
  const writable = t.columns.filter((c) => !t.source.columns.find((x) => x.name === c)?.generated)
  const typeOf = (c: string) => t.source.columns.find((x) => x.name === c)?.type ?? 'text'
  const exprs = writable.map((c) =>
    t.casts.has(c) ? `x.${quoteIdent(c)}::text::${typeOf(c)}` : `x.${quoteIdent(c)}`,
  )
  const rest = writable.filter((c) => !keys.includes(c))
  const always = t.source.columns.some((c) => c.identity === 'a' && writable.includes(c.name))
  const action =
    rest.length === 0
      ? 'do nothing'
      : `do update set ${rest.map((c) => `${quoteIdent(c)} = excluded.${quoteIdent(c)}`).join(', ')} ` +
        `where (${rest.map((c) => `s.${quoteIdent(c)}`).join(', ')}) is distinct from ` +
        `(${rest.map((c) => `excluded.${quoteIdent(c)}`).join(', ')})`
  await client.query(
    `insert into ${quoteQualified(ctx.sourceSchema, t.name)} as s (${writable.map(quoteIdent).join(', ')})` +
      `${always ? ' overriding system value' : ''} select ${exprs.join(', ')} from ${ownRows(ctx.targetSchema, t.target, 'x')} ` +
      `where x.${quoteIdent(ctx.tenantColumn ?? DEFAULTS.tenantColumn)} = $1::${ctx.idType} ` +
      `on conflict (${keys.map(quoteIdent).join(', ')}) ${action}`,
    [id],
  )
}
