import { MigrationError } from '../../errors/index.js'
import { DEFAULTS } from '../../sql/defaults.js'
import type { Queryable } from '../../sql/queryable.js'
import { quoteIdent, quoteQualified } from '../../sql/quote.js'
import { fenceKeySql, SERVING_TABLE } from '../../tenants/serving.js'
import { describeCheck, type TableCheck } from '../checks.js'
import { sqlContext } from '../copy.js'
import {
  insertStatement,
  ownRows,
  type SqlContext,
  sourceChecksumStatement,
  targetChecksumStatement,
} from '../copy-sql.js'
import { lockLedgerEntry, writeLedgerEntry } from '../ledger.js'
import type { MigrationPlan, TablePlan, TenantPlan } from '../plan.js'
import { CHECKSUM_SETTINGS, pinChecksumSettings } from '../row-checksum.js'
import {
  CHANGELOG_TABLE,
  deleteLoggedSql,
  installTriggerSql,
  keyColumns,
  loggedChecksumSql,
  upsertLoggedSql,
} from './capture-sql.js'
import { lockTables } from './table-locks.js'

/**
 * Installs the capture triggers on every legacy table of a tenant, in one
 * transaction that locks them all first ({@link lockTables}; `TablesBusyError`
 * when the app holds them: retry): from its commit on, every write to the
 * tenant's schema logs its keys (a copy that starts after it misses nothing).
 *
 * @internal
 */
export async function installCapture(
  client: Queryable,
  plan: MigrationPlan,
  tp: TenantPlan,
): Promise<void> {
  const ctx = sqlContext(plan, tp)
  const statements = tp.tables.flatMap((t) =>
    installTriggerSql(plan.targetSchema, ctx, t, keyColumns(t, tp.tenant.id)),
  )
  await client.query('begin')
  try {
    // CREATE TRIGGER waits for the tables' writers: all of them locked up front, briefly
    // (TablesBusyError when the app holds them; the caller retries).
    await lockTables(client, legacyTables(ctx, tp), 'share row exclusive')
    for (const s of statements) await client.query(s)
    await client.query('commit')
  } catch (err) {
    await client.query('rollback').catch(() => {})
    throw err
  }
}

/** The tenant's legacy tables, quoted and qualified (a partitioned one locks its partitions). @internal */
export function legacyTables(ctx: SqlContext, tp: TenantPlan): string[] {
  return tp.tables.map((t) => quoteQualified(ctx.sourceSchema, t.name))
}

/**
 * Applies the change log of one tenant to the shared tables once, outside the
 * fence, in a REPEATABLE READ transaction: the legacy rows and the log entries
 * it reads are one snapshot, and it deletes exactly the entries it applied
 * (a write after the snapshot logs a new entry for the next round). Returns how
 * many entries it applied.
 *
 * @internal
 */
export async function catchUp(
  client: Queryable,
  plan: MigrationPlan,
  tp: TenantPlan,
  options: { verify?: boolean } = {},
): Promise<{ applied: number; verified: boolean }> {
  await client.query('begin isolation level repeatable read')
  try {
    await client.query("select set_config('jit', 'off', true)")
    const applied = await applyLog(client, plan, tp)
    // Every row of both sides in this one snapshot: what the fence then checks is the change since.
    const verified = options.verify
      ? (await verifyTables(client, sqlContext(plan, tp), tp.tables)).every((c) => c.ok)
      : false
    await client.query('commit')
    return { applied, verified }
  } catch (err) {
    await client.query('rollback').catch(() => {})
    throw err
  }
}

/** Entries of the change log of a tenant (an estimate of the work left). @internal */
export async function logged(client: Queryable, plan: MigrationPlan, id: string): Promise<number> {
  const { rows } = await client.query(
    `select count(*)::int8 as n from ${quoteQualified(plan.targetSchema, CHANGELOG_TABLE)} where tenant_id = $1`,
    [id],
  )
  return Number(rows[0]?.n ?? 0)
}

async function applyLog(
  client: Queryable,
  plan: MigrationPlan,
  tp: TenantPlan,
  keep = false,
): Promise<number> {
  const ctx = sqlContext(plan, tp)
  const n = await logged(client, plan, tp.tenant.id)
  if (n === 0) return 0
  await client.query('set constraints all deferred')
  for (const t of [...tp.tables].reverse()) {
    const s = deleteLoggedSql(plan.targetSchema, ctx, t, keyColumns(t, tp.tenant.id))
    await client.query(s.text, s.values)
  }
  for (const t of tp.tables) {
    const s = upsertLoggedSql(plan.targetSchema, ctx, t, keyColumns(t, tp.tenant.id))
    await client.query(s.text, s.values)
  }
  if (!keep) await clearLog(client, plan, tp.tenant.id)
  return n
}

async function clearLog(client: Queryable, plan: MigrationPlan, id: string): Promise<void> {
  await client.query(
    `delete from ${quoteQualified(plan.targetSchema, CHANGELOG_TABLE)} where tenant_id = $1`,
    [id],
  )
}

/**
 * What one cut-over did.
 */
export interface CutoverResult {
  /** How long the tenant's requests were held up: from the fence requested (new requests queue behind it) to the commit, ms. */
  readonly fenceMs: number
  /** Change log entries applied inside the fence. */
  readonly applied: number
  /** The delta failed to apply (a transient unique conflict): the tenant was copied again inside the fence. */
  readonly recopied: boolean
  readonly checks: readonly TableCheck[]
  /** Where the fence time went, ms: waiting for the fence, applying the log, verifying, the rest (sequences, flip, triggers, commit). */
  readonly steps: {
    readonly wait: number
    readonly apply: number
    readonly verify: number
    readonly flip: number
  }
}

/**
 * The cut-over of one tenant, in ONE transaction: takes the tenant's fence (the
 * exclusive advisory lock its hybrid requests hold shared, and the capture
 * triggers take for every other writer of its legacy tables; waits at most
 * `fenceTimeoutMs` for the transactions in flight; lock timeout 55P03), then
 * its legacy tables in `access share` mode (a short wait, `TablesBusyError`;
 * see {@link lockTables}): that waits only for DDL, never for a writer. Applies
 * the rest of the change log (or, should that fail, copies the tenant again),
 * verifies every table (counts and checksums, legacy against shared), moves the
 * shared sequences above the tenant's ids, flips its placement to `shared` with
 * its ledger row, and commits, which lifts the fence. The capture triggers stay:
 * a write to the legacy tables still waiting on the fence then is refused
 * (`RTP01`), and so is every later one. A crash or error anywhere rolls all of
 * it back: the tenant stays on its schema, and the fence dies with the session.
 *
 * @internal
 */
export async function cutOver(
  client: Queryable,
  plan: MigrationPlan,
  tp: TenantPlan,
  options: {
    fenceTimeoutMs: number
    onFenced?: () => void
    /**
     * Both sides matched in full in the snapshot of the last catch-up (outside the
     * fence): inside it, the counts of every table and the checksums of the rows
     * logged since are compared. Otherwise, every row is compared inside the fence.
     */
    preverified?: boolean
  },
): Promise<CutoverResult> {
  const ctx = sqlContext(plan, tp)
  const id = tp.tenant.id
  await client.query('begin')
  try {
    await client.query(
      `select set_config('lock_timeout', $1, true), set_config('jit', 'off', true), ` +
        `set_config('rowtenancy.tenant_id', $2, true)`,
      [String(options.fenceTimeoutMs), id],
    )
    const requested = performance.now()
    // The tenant's migration lock (copy, rollback, drop-schemas never overlap), then its fence.
    await client.query(
      "select pg_advisory_xact_lock(hashtext('rowtenancy.migrate'), hashtext($1))",
      [id],
    )
    await client.query(`select pg_advisory_xact_lock(${fenceKeySql('$1::text')})`, [id])
    const locked = performance.now()
    options.onFenced?.()
    // The fence keeps every writer of the tenant out: hybrid requests wait at rowtenancy_enter,
    // other sessions in their capture trigger, after their write and before their commit (the
    // cut-over does not see that write; once it commits, the trigger refuses it). No lock a
    // writer would wait on is taken here: the legacy tables only in access share mode, briefly
    // (a session running DDL on one: TablesBusyError, roll back, which lifts the fence, retry).
    await lockTables(client, legacyTables(ctx, tp), 'access share')
    // The fence and the tables are held: the statements below wait on nothing of the app's.
    await client.query("select set_config('lock_timeout', '0', true)")
    const placement = await client.query(
      `select placement from ${quoteQualified(plan.targetSchema, SERVING_TABLE)} where tenant_id = $1::${plan.idType}`,
      [id],
    )
    if (placement.rows[0]?.placement !== 'schema') {
      throw new MigrationError(`Tenant ${id} is not served from its schema; nothing to cut over.`)
    }
    await client.query('savepoint rt_delta')
    let applied = 0
    let recopied = false
    let checks: TableCheck[] | undefined
    let appliedAt = performance.now()
    try {
      applied = await applyLog(client, plan, tp, true)
      appliedAt = performance.now()
      checks = options.preverified
        ? await verifyChanged(client, plan, ctx, tp)
        : await verifyTables(client, ctx, tp.tables)
      if (checks.some((c) => !c.ok)) checks = undefined
      else await clearLog(client, plan, id)
    } catch {
      checks = undefined
    }
    if (checks === undefined) {
      // The delta did not apply (a transient unique conflict) or did not match: the
      // tenant's shared rows are copied again, still inside the fence.
      await client.query('rollback to savepoint rt_delta')
      await recopy(client, ctx, tp)
      await clearLog(client, plan, id)
      recopied = true
      checks = await verifyTables(client, ctx, tp.tables)
      const bad = checks.find((c) => !c.ok)
      if (bad) {
        throw new MigrationError(`Verification failed for tenant ${id}: ${describeCheck(bad)}.`)
      }
    }
    await client.query('release savepoint rt_delta')
    const verifiedAt = performance.now()
    await moveTenantSequences(client, plan, id)
    await client.query(
      `update ${quoteQualified(plan.targetSchema, SERVING_TABLE)} set placement = 'shared', updated_at = now() where tenant_id = $1::${plan.idType}`,
      [id],
    )
    // After a changed-rows check, the ledger gets the exact counts now and the full
    // checksums right after the commit (the legacy tables take no writes any more).
    await markVerified(client, plan, tp, checks, !options.preverified || recopied)
    await client.query('commit')
    const end = performance.now()
    const steps = {
      wait: locked - requested,
      apply: appliedAt - locked,
      verify: verifiedAt - appliedAt,
      flip: end - verifiedAt,
    }
    return { fenceMs: end - requested, applied, recopied, checks, steps }
  } catch (err) {
    await client.query('rollback').catch(() => {})
    throw err
  }
}

/** Every shared row of the tenant replaced by a fresh copy (inside the fence). */
async function recopy(client: Queryable, ctx: SqlContext, tp: TenantPlan): Promise<void> {
  const tc = quoteIdent(ctx.tenantColumn ?? DEFAULTS.tenantColumn)
  for (const t of [...tp.tables].reverse()) {
    await client.query(
      `delete from ${ownRows(ctx.targetSchema, t.target)} where ${tc} = $1::${ctx.idType}`,
      [ctx.tenantId],
    )
  }
  for (const t of tp.tables) {
    const s = insertStatement(ctx, t)
    await client.query(s.text, s.values)
  }
}

/**
 * Inside the fence, after a full match in the last catch-up's snapshot: the
 * counts of every table, and count and checksum of the rows logged since, legacy
 * against shared. (Checksums are sums over rows: the unchanged rows matched in
 * that snapshot and neither side changed them since, the log says.)
 */
async function verifyChanged(
  client: Queryable,
  plan: MigrationPlan,
  ctx: SqlContext,
  tp: TenantPlan,
): Promise<TableCheck[]> {
  const out: TableCheck[] = []
  const tc = quoteIdent(ctx.tenantColumn ?? DEFAULTS.tenantColumn)
  await pinChecksumSettings(client)
  for (const t of tp.tables) {
    const keys = keyColumns(t, tp.tenant.id)
    const only = t.source.partitioned ? '' : 'only '
    const counts = (
      await client.query(
        `select (select count(*) from ${only}${quoteQualified(ctx.sourceSchema, t.name)})::int8 as s,
                (select count(*) from ${ownRows(ctx.targetSchema, t.target)} where ${tc} = $1::${ctx.idType})::int8 as t`,
        [ctx.tenantId],
      )
    ).rows[0]
    const s = loggedChecksumSql(plan.targetSchema, sourceChecksumStatement(ctx, t), 's', t, keys)
    const d = loggedChecksumSql(plan.targetSchema, targetChecksumStatement(ctx, t), 't', t, keys)
    const src = (await client.query(s.text, s.values)).rows[0]
    const dst = (await client.query(d.text, d.values)).rows[0]
    out.push({
      table: t.name,
      sourceRows: Number(counts.s),
      targetRows: Number(counts.t),
      sourceChecksum: src.sum,
      targetChecksum: dst.sum,
      orphans: [],
      ok: counts.s === counts.t && src.n === dst.n && src.sum === dst.sum,
    })
  }
  return out
}

/** Counts and checksums of every table, legacy against shared. */
async function verifyTables(
  client: Queryable,
  ctx: SqlContext,
  tables: readonly TablePlan[],
): Promise<TableCheck[]> {
  const out: TableCheck[] = []
  await pinChecksumSettings(client)
  for (const t of tables) {
    const s = sourceChecksumStatement(ctx, t)
    const d = targetChecksumStatement(ctx, t)
    const [src, dst] = [
      (await client.query(s.text, s.values)).rows[0],
      (await client.query(d.text, d.values)).rows[0],
    ]
    const sourceRows = Number(src.n)
    const targetRows = Number(dst.n)
    out.push({
      table: t.name,
      sourceRows,
      targetRows,
      sourceChecksum: src.sum,
      targetChecksum: dst.sum,
      orphans: [],
      ok: sourceRows === targetRows && src.sum === dst.sum,
    })
  }
  return out
}

/** Serial / identity sequences of the shared tables moved above the tenant's largest ids. */
async function moveTenantSequences(
  client: Queryable,
  plan: MigrationPlan,
  id: string,
): Promise<void> {
  const { rows } = await client.query(
    `select c.relname as table, a.attname as column,
            pg_get_serial_sequence(quote_ident(n.nspname) || '.' || quote_ident(c.relname), a.attname) as seq
       from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = $1 and c.relname = any($2::text[]) and a.attnum > 0 and not a.attisdropped
        and c.relkind in ('r', 'p') and format_type(a.atttypid, null) in ('smallint', 'integer', 'bigint')`,
    [plan.targetSchema, plan.tables],
  )
  const tc = quoteIdent(plan.tenantColumn)
  for (const r of rows) {
    if (!r.seq) continue
    // Only upwards: a sequence already past the tenant's ids is left alone.
    await client.query(
      `select setval($1::regclass, m.v) from (select max(${quoteIdent(r.column)})::int8 as v
         from ${quoteQualified(plan.targetSchema, r.table)} where ${tc} = $2::${plan.idType}) m
        where m.v is not null and m.v > coalesce(pg_sequence_last_value($1::regclass), 0)`,
      [r.seq, id],
    )
  }
}

/** The ledger row of the tenant, `done` and verified now (its tables' counts and checksums). */
async function markVerified(
  client: Queryable,
  plan: MigrationPlan,
  tp: TenantPlan,
  checks: readonly TableCheck[],
  fullChecksums: boolean,
): Promise<void> {
  const entry = await lockLedgerEntry(client, plan.targetSchema, tp.tenant.id)
  const now = new Date()
  const tables = Object.fromEntries(
    tp.tables.map((t) => {
      const c = checks.find((x) => x.table === t.name)!
      const checksum = fullChecksums ? c.targetChecksum : ''
      return [t.name, { rows: c.targetRows, checksum, columns: t.columns }]
    }),
  )
  await writeLedgerEntry(client, plan.targetSchema, {
    tenantId: tp.tenant.id,
    schema: tp.tenant.schema,
    state: 'done',
    idStrategy: plan.idStrategy,
    tables: { ...(entry?.tables ?? {}), ...tables },
    createdTenant: entry?.createdTenant ?? false,
    startedAt: entry?.startedAt ?? now,
    finishedAt: now,
    verifiedAt: now,
    verifyOk: true,
    lastError: null,
  })
}

/**
 * Fills in the ledger checksums of a tenant cut over with a changed-rows check:
 * its legacy tables, which take no writes after the cut-over, checksummed in full.
 * A crash before it leaves `''`, which `verify` / `drop-schemas` fill in.
 *
 * @internal
 */
export async function recordLegacyChecksums(
  client: Queryable,
  plan: MigrationPlan,
  tp: TenantPlan,
): Promise<void> {
  const ctx = sqlContext(plan, tp)
  await client.query(`begin; ${CHECKSUM_SETTINGS}`)
  try {
    const entry = await lockLedgerEntry(client, plan.targetSchema, tp.tenant.id)
    if (entry?.state !== 'done') {
      await client.query('rollback')
      return
    }
    const tables = { ...entry.tables }
    for (const t of tp.tables) {
      const recorded = tables[t.name]
      if (recorded?.checksum !== '') continue
      const s = sourceChecksumStatement(ctx, t)
      const now = (await client.query(s.text, s.values)).rows[0]
      if (Number(now.n) !== recorded.rows) continue // changed since: verify will say so
      tables[t.name] = { ...recorded, checksum: now.sum }
    }
    await writeLedgerEntry(client, plan.targetSchema, { ...entry, tables })
    await client.query('commit')
  } catch (err) {
    await client.query('rollback').catch(() => {})
    throw err
  }
}
