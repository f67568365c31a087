import type pg from 'pg'
import { AuditWriter } from '../audit/index.js'
import { explainUnreachable } from '../db/connect.js'
import { describeValue } from '../errors/describe-value.js'
import { InvalidInputError, LifecycleError } from '../errors/index.js'
import { ownRows } from '../migrate/copy-sql.js'
import { checkOptionTypes } from '../sql/option-types.js'
import type { Queryable } from '../sql/queryable.js'
import { quoteIdent, quoteQualified } from '../sql/quote.js'
import { parseTenantId } from '../tenants/id-types.js'
import { hasControlCharacters } from '../tenants/normalize.js'
import { bindTenant, pinTextSettings, type TableChecksum, tenantChecksums } from './checksums.js'
import type { LifecycleListener } from './events.js'
import { type LayoutOptions, resolveLayout } from './layout.js'
import { checkLockTimeout, explainLockWaits, limitLockWaits } from './lock-limit.js'
import type { ManifestTenant } from './manifest.js'
import { type LifecycleTable, type TenantLayout, tenantTables } from './tables.js'
import { lockTenant, readTenant } from './tenant-row.js'

/**
 * The proof of an erasure: what was there before, and that nothing is left.
 *
 * @example
 * ```ts
 * const c: ErasureCertificate = { kind: 'rowtenancy-erasure-certificate', tenant, database: 'app', schema: 'public',
 *   tables: [{ table: 'book', rows: 3, checksum: '12', rowsAfter: 0 }], erasedAt: '2026-01-01T00:00:00.000Z',
 *   actor: 'alice', tenantRowErased: true, dryRun: false }
 * ```
 */
export interface ErasureCertificate {
  readonly kind: 'rowtenancy-erasure-certificate'
  readonly tenant: ManifestTenant
  readonly database: string
  readonly schema: string
  /** Per table, in foreign-key order (rows are deleted in the reverse): rows and checksum before, rows after (always 0). */
  readonly tables: readonly (TableChecksum & { readonly rowsAfter: number })[]
  readonly erasedAt: string
  readonly actor: string
  /** Whether the `tenants` row and domains went too (a move keeps the directory row in the catalog). */
  readonly tenantRowErased: boolean
  /** A dry run counts and deletes nothing. */
  readonly dryRun: boolean
}

/**
 * Options of {@link eraseTenant}.
 */
export interface EraseOptions extends LayoutOptions {
  readonly db: pg.Pool
  readonly tenantId: string | number | bigint
  /** Who asked; recorded in the audit log and the certificate. */
  readonly actor?: string | undefined
  /** Why; recorded in the audit log. `tenant erase` by default. */
  readonly reason?: string | undefined
  /** Count only, delete nothing. */
  readonly dryRun?: boolean | undefined
  /** The audit table (`audit_log` by default); it is written when it exists. */
  readonly auditTable?: string | undefined
  /**
   * The longest any statement waits for a lock another session holds, ms (1 to
   * 600000); then the transaction rolls back and a `DatabaseUnavailableError`
   * names the holders. No limit by default.
   */
  readonly lockTimeoutMs?: number | undefined
  readonly onEvent?: LifecycleListener | undefined
}

/**
 * Deletes one tenant's rows inside the caller's transaction (tenant bound, lock
 * held, text settings pinned): checksums every table first, deletes in reverse
 * foreign-key order with deferrable constraints deferred, proves each table has
 * no row of the tenant left, then (unless `keepTenantRow`) deletes its domains
 * and its `tenants` row. Throws (the caller rolls back) when anything remains.
 *
 * @internal
 */
export async function eraseInTransaction(
  db: Queryable,
  layout: TenantLayout,
  tenantId: string,
  tables: readonly LifecycleTable[],
  options: { keepTenantRow: boolean; dryRun?: boolean; onEvent?: LifecycleListener | undefined },
): Promise<{ before: TableChecksum[]; after: number[] }> {
  const before = await tenantChecksums(db, layout, tenantId, tables)
  await assertNoForeignReferences(db, layout, tenantId, tables)
  if (options.dryRun) return { before, after: before.map((b) => b.rows) }
  await db.query('set constraints all deferred')
  const reversed = [...tables].reverse()
  for (const [i, t] of reversed.entries()) {
    const r = await db.query(
      `delete from ${ownRows(layout.schema, t.info)} where ${quoteIdent(layout.tenantColumn)} = $1::${layout.idType}`,
      [tenantId],
    )
    options.onEvent?.({
      type: 'table',
      op: 'erase',
      table: t.name,
      rows: r.rowCount ?? 0,
      index: i,
      of: tables.length,
    })
  }
  // Deferred constraints fire now, while the transaction can still roll back.
  await db.query('set constraints all immediate')
  const after = await remainingRows(db, layout, tenantId, tables)
  const left = tables.flatMap((t, i) => (after[i] !== 0 ? [`${t.name} (${after[i]})`] : []))
  if (left.length > 0) {
    throw new LifecycleError(
      `Rows of tenant ${tenantId} remain after the delete: ${left.join(', ')}.`,
    )
  }
  if (!options.keepTenantRow) await eraseTenantRow(db, layout, tenantId)
  return { before, after }
}

/**
 * Refuses (LifecycleError) when a row outside the tenant (another tenant's, or a shared
 * table's) references one of its rows through a foreign key that does not carry the tenant
 * column on both sides: deleting the tenant's row would cascade into that row, set it to null
 * or fail on it, and referential actions run as the owner, past row level security.
 */
async function assertNoForeignReferences(
  db: Queryable,
  layout: TenantLayout,
  tenantId: string,
  tables: readonly LifecycleTable[],
): Promise<void> {
  const { rows: keys } = await db.query(
    `select k.conname as name, k.conrelid::regclass::text as child, k.confrelid::regclass::text as parent,
            array(select a.attname::text from unnest(k.conkey) with ordinality u(n, i)
                   join pg_catalog.pg_attribute a on a.attrelid = k.conrelid and a.attnum = u.n order by u.i) as columns,
            array(select a.attname::text from unnest(k.confkey) with ordinality u(n, i)
                   join pg_catalog.pg_attribute a on a.attrelid = k.confrelid and a.attnum = u.n order by u.i) as ref_columns,
            exists (select 1 from pg_catalog.pg_attribute a where a.attrelid = k.conrelid
                     and a.attname = $2 and a.attnum > 0 and not a.attisdropped) as child_tenant
       from pg_catalog.pg_constraint k
      where k.contype = 'f' and k.conparentid = 0
        and k.confrelid = any (select pg_catalog.to_regclass(t)::oid from unnest($1::text[]) t)`,
    [tables.map((t) => quoteQualified(layout.schema, t.name)), layout.tenantColumn],
  )
  const tc = layout.tenantColumn
  const found: string[] = []
  for (const k of keys as {
    name: string
    child: string
    parent: string
    columns: string[]
    ref_columns: string[]
    child_tenant: boolean
  }[]) {
    // (tenant, x) -> (tenant, id): a row can only reference its own tenant's rows.
    if (k.columns.some((c, i) => c === tc && k.ref_columns[i] === tc)) continue
    const on = k.columns.map((c, i) => `c.${quoteIdent(c)} = p.${quoteIdent(k.ref_columns[i]!)}`)
    const other = k.child_tenant
      ? ` and c.${quoteIdent(tc)} is distinct from $1::${layout.idType}`
      : ''
    const { rows } = await db.query(
      `select count(*)::int8::text as n from ${k.child} c join ${k.parent} p on ${on.join(' and ')}
        where p.${quoteIdent(tc)} = $1::${layout.idType}${other}`,
      [tenantId],
    )
    if (rows[0]?.n !== '0') found.push(`${k.child} (${rows[0]?.n} rows, foreign key ${k.name})`)
  }
  if (found.length > 0) {
    throw new LifecycleError(
      `Rows outside tenant ${tenantId} reference its rows: ${found.join('; ')}. Erasing it would cascade into ` +
        'them, set them to null or fail on them. Remove or repoint those references first (doctor reports such keys as FOREIGN_KEY_WITHOUT_TENANT); nothing was erased.',
    )
  }
}

/** The rows of the tenant left in each table, in the order of `tables`. */
async function remainingRows(
  db: Queryable,
  layout: TenantLayout,
  tenantId: string,
  tables: readonly LifecycleTable[],
): Promise<number[]> {
  const after: number[] = []
  for (const t of tables) {
    const { rows } = await db.query(
      `select count(*)::int8 as n from ${ownRows(layout.schema, t.info)} where ${quoteIdent(layout.tenantColumn)} = $1::${layout.idType}`,
      [tenantId],
    )
    after.push(Number(rows[0].n))
  }
  return after
}

/** Deletes the tenant's domains and `tenants` row, and proves both are gone. */
async function eraseTenantRow(
  db: Queryable,
  layout: TenantLayout,
  tenantId: string,
): Promise<void> {
  const ts = layout.tenantsSchema
  await db.query(
    `delete from ${quoteQualified(ts, 'tenant_domains')} where tenant_id = $1::${layout.idType}`,
    [tenantId],
  )
  await db.query(`delete from ${quoteQualified(ts, 'tenants')} where id = $1::${layout.idType}`, [
    tenantId,
  ])
  const gone = await db.query(
    `select (select count(*) from ${quoteQualified(ts, 'tenants')} where id = $1::${layout.idType})
            + (select count(*) from ${quoteQualified(ts, 'tenant_domains')} where tenant_id = $1::${layout.idType}) as n`,
    [tenantId],
  )
  if (Number(gone.rows[0].n) !== 0) {
    throw new LifecycleError(
      `The tenants row or domains of tenant ${tenantId} remain after the delete.`,
    )
  }
}

/**
 * Writes one lifecycle audit record when the audit table exists (in the
 * caller's transaction); returns whether it did.
 *
 * @internal
 */
export async function auditLifecycle(
  db: Queryable,
  table: string,
  entry: { reason: string; actor: string; tenantId: string; statement: string; rowCount: number },
): Promise<boolean> {
  const { rows } = await db.query('select to_regclass($1) is not null as found', [
    table.includes('.') ? table : quoteIdent(table),
  ])
  if (!rows[0]?.found) return false
  await new AuditWriter({ table }).record(
    { source: 'allObjects', reason: entry.reason, actor: entry.actor, tenantId: entry.tenantId },
    entry.statement,
    { rowCount: entry.rowCount },
    db,
  )
  return true
}

/**
 * `rowtenancy tenants erase`: deletes every row of one tenant from every
 * tenant-aware table (reverse foreign-key order), then its domains and its
 * `tenants` row, in ONE transaction; proves no row is left; writes an audit
 * record (when the audit table exists) and returns the erasure certificate.
 * `dryRun` counts and checksums only. Unknown tenant: `TenantNotFoundError`,
 * nothing changed.
 *
 * @example
 * ```ts
 * const cert = await eraseTenant({ db: pool, tenantId: '7', actor: 'dpo@example.com', reason: 'GDPR art. 17' })
 * cert.tables.every((t) => t.rowsAfter === 0) // true
 * ```
 */
export async function eraseTenant(
  options: EraseOptions & { keepTenantRow?: boolean },
): Promise<ErasureCertificate> {
  checkOptionTypes('eraseTenant', options, { db: 'pool', dryRun: 'boolean' }, ['db'])
  const ms = checkLockTimeout('eraseTenant', options.lockTimeoutMs)
  const actor = auditText(options.actor, 'actor', defaultActor())
  const reason = auditText(options.reason, 'reason', 'tenant erase')
  return explainLockWaits([{ db: options.db, layout: options }], ms, ERASE_AFTERWARDS, () =>
    eraseOnce(options, ms, actor, reason),
  )
}

const ERASE_AFTERWARDS =
  'Nothing was erased (its one transaction was rolled back): rerunning the command does the whole erasure.'

/** The erasure in its one transaction, its lock waits limited to `ms`. */
async function eraseOnce(
  options: EraseOptions & { keepTenantRow?: boolean },
  ms: number | undefined,
  actor: string,
  reason: string,
): Promise<ErasureCertificate> {
  const started = performance.now()
  const client = await explainUnreachable(options.db, () => options.db.connect())
  let failed = false
  try {
    await client.query('begin')
    await limitLockWaits(client, ms)
    await pinTextSettings(client)
    const layout = await resolveLayout(client, options)
    const tenantId = parseTenantId(layout.idType, options.tenantId)
    await bindTenant(client, tenantId)
    await lockTenant(client, tenantId)
    const tenant = await readTenant(client, layout, tenantId, { lock: true })
    const { tables } = await tenantTables(client, layout)
    options.onEvent?.({ type: 'start', op: 'erase', tenantId, tables: tables.length, rows: 0 })
    const keepTenantRow = options.keepTenantRow === true
    const { before, after } = await eraseInTransaction(client, layout, tenantId, tables, {
      keepTenantRow,
      dryRun: options.dryRun === true,
      onEvent: options.onEvent,
    })
    const rows = before.reduce((n, b) => n + b.rows, 0)
    const database = (await client.query('select current_database() as d')).rows[0].d as string
    if (!options.dryRun) {
      await auditLifecycle(client, options.auditTable ?? 'audit_log', {
        reason,
        actor,
        tenantId,
        statement: `rowtenancy tenants erase: tenant ${tenantId}, ${tables.length} tables, ${rows} rows`,
        rowCount: rows,
      })
    }
    await client.query(options.dryRun ? 'rollback' : 'commit')
    options.onEvent?.({ type: 'done', op: 'erase', rows, ms: performance.now() - started })
    return {
      kind: 'rowtenancy-erasure-certificate',
      tenant,
      database,
      schema: layout.schema,
      tables: before.map((b, i) => ({ ...b, rowsAfter: options.dryRun ? b.rows : after[i]! })),
      erasedAt: new Date().toISOString(),
      actor,
      tenantRowErased: !options.dryRun && !keepTenantRow,
      dryRun: options.dryRun === true,
    }
  } catch (err) {
    failed = true
    await client.query('rollback').catch(() => {})
    throw err
  } finally {
    client.release(failed ? true : undefined)
  }
}

/**
 * @internal an `actor` or `reason` for the audit log: `fallback` when not given (or null);
 * else non-empty text of at most 500 characters without control characters
 * (an empty one would record nothing, a line break could forge a record line).
 */
export function auditText(value: unknown, option: 'actor' | 'reason', fallback: string): string {
  if (value === undefined || value === null) return fallback
  const text = typeof value === 'string' ? value.trim() : ''
  if (text.length === 0 || text.length > 500 || hasControlCharacters(text)) {
    throw new InvalidInputError(
      `Invalid \`${option}\` ${describeValue(value)}: it is written to the audit log, so give 1-500 ` +
        `characters of text without control characters${option === 'actor' ? ' (who asks, e.g. dpo@example.com), or leave it out for the OS user' : " (why, e.g. 'GDPR art. 17 request 2291')"}. Nothing was changed.`,
    )
  }
  return text
}

/** @internal the OS user, as the actor when none is named */
export function defaultActor(): string {
  return process.env.USER ?? process.env.LOGNAME ?? 'unknown'
}
