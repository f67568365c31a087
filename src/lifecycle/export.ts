import { open, rename, rm } from 'node:fs/promises'
import type { Writable } from 'node:stream'
import { finished } from 'node:stream/promises'
import type pg from 'pg'
import { to as copyTo } from 'pg-copy-streams'
import { explainUnreachable } from '../db/connect.js'
import { LifecycleError } from '../errors/index.js'
import { ownRows } from '../migrate/copy-sql.js'
import { checkOptionTypes } from '../sql/option-types.js'
import { quoteIdent, quoteLiteral } from '../sql/quote.js'
import { parseTenantId } from '../tenants/id-types.js'
import { ArchiveWriter, archiveKeyBytes } from './archive-format.js'
import { bindTenant, pinTextSettings, type TableChecksum, tenantChecksums } from './checksums.js'
import type { LifecycleListener } from './events.js'
import { assertWritable, checkStreamOption } from './files.js'
import { type LayoutOptions, resolveLayout } from './layout.js'
import { checkLockTimeout, explainLockWaits, limitLockWaits } from './lock-limit.js'
import {
  type ArchiveHeader,
  type ArchiveManifest,
  rowtenancyVersion,
  withSummary,
} from './manifest.js'
import {
  type LifecycleTable,
  schemaFingerprint,
  type TenantLayout,
  tenantTables,
} from './tables.js'
import { readTenant } from './tenant-row.js'

/**
 * Options of {@link exportTenant}.
 */
export interface ExportOptions extends LayoutOptions {
  readonly db: pg.Pool
  readonly tenantId: string | number | bigint
  /** A file path (written as `<path>.partial`, renamed when complete) or a stream. */
  readonly out: string | Writable
  /**
   * Signs the archive (HMAC-SHA256 over its sha256) with this secret, at least 16
   * bytes. Import with the same key to refuse an archive edited or written by
   * anything else; the CLI reads it from `ROWTENANCY_ARCHIVE_KEY`.
   */
  readonly archiveKey?: string | Uint8Array | undefined
  /**
   * The longest any statement waits for a lock another session holds, ms (1 to
   * 600000); then the export stops, its partial archive removed, and a
   * `DatabaseUnavailableError` names the holders. No limit by default.
   */
  readonly lockTimeoutMs?: number | undefined
  readonly onEvent?: LifecycleListener | undefined
}

/**
 * What {@link exportTenant} wrote.
 */
export interface ExportResult {
  readonly manifest: ArchiveManifest
  readonly bytes: number
  readonly sha256: string
  readonly ms: number
}

/** @internal the COPY that reads one tenant's rows of one table */
export function exportCopySql(layout: TenantLayout, t: LifecycleTable, tenantId: string): string {
  // COPY takes no parameters: the id is validated by parseTenantId and quoted as a literal.
  return (
    `copy (select ${t.copyColumns.map(quoteIdent).join(', ')} from ${ownRows(layout.schema, t.info)} ` +
    `where ${quoteIdent(layout.tenantColumn)} = ${quoteLiteral(tenantId)}::${layout.idType}) to stdout`
  )
}

/**
 * Writes one tenant to a portable archive: a manifest (tenant row and domains,
 * tables in foreign-key order with columns and types, row counts and the
 * checksums `rowtenancy verify` computes, the rowtenancy version, a schema
 * fingerprint), then each table's rows as `COPY ... TO STDOUT` text, all read in
 * one repeatable-read snapshot. Streamed: memory does not grow with the tenant.
 * Reads only; an unknown tenant throws `TenantNotFoundError` before any file is made.
 *
 * @example
 * ```ts
 * const { manifest } = await exportTenant({ db: pool, tenantId: '7', out: 'acme.rtar' })
 * ```
 */
export async function exportTenant(options: ExportOptions): Promise<ExportResult> {
  checkOptionTypes('exportTenant', options, { db: 'pool' }, ['db'])
  checkStreamOption('exportTenant', 'out', options.out, 'write')
  const lockMs = checkLockTimeout('exportTenant', options.lockTimeoutMs)
  const key = options.archiveKey === undefined ? undefined : archiveKeyBytes(options.archiveKey)
  return explainLockWaits(
    [{ db: options.db, layout: options }],
    lockMs,
    EXPORT_AFTERWARDS,
    () => exportOnce(options, lockMs, key),
    'access share',
  )
}

const EXPORT_AFTERWARDS =
  'Nothing was exported (the partial archive was removed): rerunning the command does the whole export.'

/** The export in one snapshot, its lock waits limited to `lockMs`. */
async function exportOnce(
  options: ExportOptions,
  lockMs: number | undefined,
  key: Uint8Array | undefined,
): Promise<ExportResult> {
  const started = performance.now()
  const path = typeof options.out === 'string' ? options.out : undefined
  // A path that cannot be written is refused before anything is read.
  if (path !== undefined) await assertWritable(path, 'the archive', 'nothing was exported')
  const client = await explainUnreachable(options.db, () => options.db.connect())
  let out: Writable | undefined
  let second: pg.PoolClient | undefined
  let failed = false
  try {
    await client.query('begin isolation level repeatable read read only')
    await limitLockWaits(client, lockMs)
    const snapshot = (await client.query('select pg_export_snapshot() as s')).rows[0].s as string
    await pinTextSettings(client)
    const layout = await resolveLayout(client, options)
    const tenantId = parseTenantId(layout.idType, options.tenantId)
    await bindTenant(client, tenantId)
    const tenant = await readTenant(client, layout, tenantId)
    const { tables, cyclic } = await tenantTables(client, layout)
    const header = archiveHeader(layout, tenant, tables, cyclic, await sourceOf(client))
    // The counts and checksums run on a second connection in the same snapshot while the rows stream.
    second = await options.db.connect()
    const sumsPromise = checksumsInSnapshot(second, snapshot, layout, tenantId, tables, lockMs)
    sumsPromise.catch(() => {})
    options.onEvent?.({ type: 'start', op: 'export', tenantId, tables: tables.length, rows: 0 })
    out = path ? await openPrivate(`${path}.partial`) : (options.out as Writable)
    const writer = new ArchiveWriter(out, key)
    await writer.start(JSON.stringify(header))
    const copied = await copyTables(client, writer, layout, tenantId, tables, options.onEvent)
    const sums = await sumsPromise
    checkCopiedCounts(tables, copied, sums)
    const summary = JSON.stringify({ tables: sums })
    await writer.summary(summary)
    await client.query('commit')
    const sha256 = await writer.finish()
    if (path) {
      out.end()
      await finished(out)
      await rename(`${path}.partial`, path)
    }
    const manifest = withSummary(header, summary)
    const total = sums.reduce((n, s) => n + s.rows, 0)
    const ms = performance.now() - started
    options.onEvent?.({ type: 'done', op: 'export', rows: total, ms })
    return { manifest, bytes: writer.bytes, sha256, ms }
  } catch (err) {
    failed = true
    await client.query('rollback').catch(() => {})
    if (path && out) {
      out.destroy()
      await rm(`${path}.partial`, { force: true }).catch(() => {})
    }
    throw err
  } finally {
    client.release(failed ? true : undefined)
    second?.release(failed ? true : undefined)
  }
}

/** The database and server version the archive comes from. */
async function sourceOf(client: pg.PoolClient): Promise<ArchiveHeader['source']> {
  const info = (
    await client.query("select current_database() as db, current_setting('server_version') as v")
  ).rows[0]
  return { database: info.db, serverVersion: info.v }
}

/** The archive header: layout, tenant, tables with their columns and types, fingerprint. */
function archiveHeader(
  layout: TenantLayout,
  tenant: ArchiveHeader['tenant'],
  tables: readonly LifecycleTable[],
  cyclic: string[],
  source: ArchiveHeader['source'],
): ArchiveHeader {
  return {
    format: 'rowtenancy-tenant-archive',
    formatVersion: 1,
    rowtenancy: rowtenancyVersion(),
    createdAt: new Date().toISOString(),
    copyFormat: 'text',
    source,
    schema: layout.schema,
    tenantsSchema: layout.tenantsSchema,
    tenantColumn: layout.tenantColumn,
    idType: layout.idType,
    tenant,
    fingerprint: schemaFingerprint(tables),
    tables: tables.map((t) => ({
      name: t.name,
      columns: t.copyColumns.map((name) => {
        const c = t.info.columns.find((x) => x.name === name)!
        return {
          name,
          type: c.type,
          typeKind: c.typeKind,
          ...(c.enumLabels ? { enumLabels: c.enumLabels } : {}),
        }
      }),
    })),
    cyclic,
  }
}

/** Streams each table's rows of the tenant into the archive; returns the rows COPY wrote per table. */
async function copyTables(
  client: pg.PoolClient,
  writer: ArchiveWriter,
  layout: TenantLayout,
  tenantId: string,
  tables: readonly LifecycleTable[],
  onEvent: LifecycleListener | undefined,
): Promise<number[]> {
  const copied: number[] = []
  for (const [i, t] of tables.entries()) {
    await writer.beginTable(i)
    const stream = client.query(copyTo(exportCopySql(layout, t, tenantId)))
    for await (const chunk of stream) await writer.chunk(chunk as Buffer)
    await writer.endTable(i)
    copied.push(Number(stream.rowCount ?? -1))
    onEvent?.({
      type: 'table',
      op: 'export',
      table: t.name,
      rows: copied[i]!,
      index: i,
      of: tables.length,
    })
  }
  return copied
}

/** Throws when COPY wrote another number of rows than the count in the same snapshot. */
function checkCopiedCounts(
  tables: readonly LifecycleTable[],
  copied: readonly number[],
  sums: readonly TableChecksum[],
): void {
  for (const [i, t] of tables.entries()) {
    if (copied[i] !== sums[i]!.rows) {
      throw new LifecycleError(
        `${t.name}: COPY wrote ${copied[i]} rows but the count in the same snapshot was ${sums[i]!.rows}.`,
      )
    }
  }
}

/** Counts and checksums on `c`, in the snapshot `snapshot` exported by the COPY connection. */
async function checksumsInSnapshot(
  c: pg.PoolClient,
  snapshot: string,
  layout: TenantLayout,
  tenantId: string,
  tables: readonly LifecycleTable[],
  lockMs: number | undefined,
): Promise<TableChecksum[]> {
  await c.query('begin isolation level repeatable read read only')
  try {
    await c.query('set transaction snapshot ' + quoteLiteral(snapshot))
    await limitLockWaits(c, lockMs)
    await pinTextSettings(c)
    await bindTenant(c, tenantId)
    return await tenantChecksums(c, layout, tenantId, tables)
  } finally {
    await c.query('rollback').catch(() => {})
  }
}

/**
 * A new file readable by its owner alone (an archive holds a tenant's every
 * row, and the default work directory is the shared temp directory). Whatever
 * is at `file` (a stale partial archive, or a link someone put there) is
 * removed first, never written through.
 */
async function openPrivate(file: string): Promise<Writable> {
  await rm(file, { force: true })
  const handle = await open(file, 'wx', 0o600)
  return handle.createWriteStream()
}
