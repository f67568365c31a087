import { createReadStream } from 'node:fs'
import type { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type pg from 'pg'
import { from as copyFrom } from 'pg-copy-streams'
import { explainUnreachable } from '../db/connect.js'
import { InvalidInputError, LifecycleError } from '../errors/index.js'
import { checkTables, describeCheck } from '../migrate/checks.js'
import { compareWithTarget } from '../migrate/drift.js'
import { adjustSequences, type SequenceAdjustment } from '../migrate/sequences.js'
import type { ColumnInfo, DriftIssue, TableInfo } from '../migrate/types.js'
import { checkOptionTypes } from '../sql/option-types.js'
import type { Queryable } from '../sql/queryable.js'
import { quoteIdent, quoteQualified } from '../sql/quote.js'
import { parseTenantId } from '../tenants/id-types.js'
import { normalizeSlug } from '../tenants/normalize.js'
import { ArchiveReader, type ArchiveSignatureState, archiveKeyBytes } from './archive-format.js'
import {
  asTablePlan,
  bindTenant,
  lifecycleContext,
  pinTextSettings,
  type TableChecksum,
} from './checksums.js'
import { eraseInTransaction } from './erase.js'
import type { LifecycleListener } from './events.js'
import { assertReadableFile, checkStreamOption } from './files.js'
import { type LayoutOptions, resolveLayout } from './layout.js'
import { checkLockTimeout, explainLockWaits, limitLockWaits } from './lock-limit.js'
import {
  type ArchiveHeader,
  type ArchiveManifest,
  parseManifest,
  readArchiveManifest,
  withSummary,
} from './manifest.js'
import { type LifecycleTable, type TenantLayout, tenantTables } from './tables.js'
import { lockTenant } from './tenant-row.js'

/**
 * Options of {@link importTenant}.
 */
export interface ImportOptions extends LayoutOptions {
  readonly db: pg.Pool
  /** An archive file path, or a stream of one. */
  readonly in: string | Readable
  /** Import under this id instead of the archived one (every tenant column is rewritten). */
  readonly asTenantId?: string | number | bigint | undefined
  /** The slug of the imported tenant; the archived one by default (suffixed with the id when taken). */
  readonly slug?: string | undefined
  /** Erase an existing tenant with the same id first, in the same transaction. */
  readonly replace?: boolean | undefined
  /** Accept an existing `tenants` row that owns no rows (a move back to the catalog database). @internal */
  readonly reuseEmptyTenant?: boolean | undefined
  /**
   * The key the archive was signed with: an archive without a signature, or
   * with one made by another key, is refused before anything commits. Without
   * it, a signed archive imports with its signature not checked.
   */
  readonly archiveKey?: string | Uint8Array | undefined
  /**
   * The longest any statement waits for a lock another session holds, ms (1 to
   * 600000); then the transaction rolls back and a `DatabaseUnavailableError`
   * names the holders. No limit by default.
   */
  readonly lockTimeoutMs?: number | undefined
  readonly onEvent?: LifecycleListener | undefined
}

/**
 * What {@link importTenant} did.
 */
export interface ImportResult {
  readonly tenantId: string
  readonly slug: string
  /** Row counts and checksums after the load (equal to the archive's). */
  readonly tables: readonly TableChecksum[]
  readonly sequences: readonly SequenceAdjustment[]
  /** Non-blocking differences between the archive and this database. */
  readonly drift: readonly DriftIssue[]
  /** Domains another tenant of this database already holds. */
  readonly skippedDomains: readonly string[]
  readonly replaced: boolean
  /** Whether the archive's signature was checked with the key, present but not checked, or absent. */
  readonly signature: ArchiveSignatureState
  readonly rows: number
  readonly ms: number
}

/** A manifest table as the drift check reads a source table. */
function archivedTableInfo(m: ArchiveHeader, t: ArchiveHeader['tables'][number]): TableInfo {
  return {
    schema: m.schema,
    name: t.name,
    partitioned: false,
    columns: t.columns.map(
      (c): ColumnInfo => ({
        name: c.name,
        type: c.type,
        notNull: false,
        hasDefault: false,
        generated: false,
        identity: '',
        typeKind: c.typeKind ?? 'b',
        ...(c.enumLabels ? { enumLabels: c.enumLabels } : {}),
      }),
    ),
    primaryKey: [],
    foreignKeys: [],
    estimatedRows: 0,
    userTriggers: [],
  }
}

/**
 * Compares the archive's tables with this database's tenant tables, the way the
 * migration reports drift; throws a `LifecycleError` listing every blocking
 * difference. Returns the target tables in archive order (COPY columns = the
 * archive's) and the non-blocking issues.
 *
 * @internal
 */
export function checkCompatible(
  m: ArchiveHeader,
  layout: TenantLayout,
  targets: readonly LifecycleTable[],
): { tables: LifecycleTable[]; drift: DriftIssue[] } {
  // Each table once, and the tenant column this database's: the row checks below read the
  // archive's rows by them (a table listed twice would be checked once and loaded twice).
  const listed = m.tables.map((t) => t.name)
  const twice = listed.filter((name, i) => listed.indexOf(name) !== i)
  if (twice.length > 0) {
    throw new LifecycleError(
      `The archive lists ${[...new Set(twice)].join(', ')} more than once: it was edited. Nothing was imported.`,
    )
  }
  if (m.tenantColumn !== layout.tenantColumn) {
    throw new LifecycleError(
      `The archive's tenant column is ${JSON.stringify(m.tenantColumn)}, this database's ${JSON.stringify(layout.tenantColumn)}: ` +
        'it was made for another layout, or edited. Nothing was imported.',
    )
  }
  const source = new Map(m.tables.map((t) => [t.name, archivedTableInfo(m, t)]))
  const target = new Map(targets.map((t) => [t.name, t.info]))
  const names = [...new Set([...m.tables.map((t) => t.name), ...targets.map((t) => t.name)])]
  const issues = compareWithTarget(source, target, names, layout.schema, layout.tenantColumn)
  for (const t of m.tables) {
    const info = target.get(t.name)
    for (const c of info?.columns ?? []) {
      if (c.generated && t.columns.some((x) => x.name === c.name)) {
        issues.push({
          kind: 'type-mismatch',
          table: t.name,
          column: c.name,
          blocking: true,
          message: `${layout.schema}.${t.name}.${c.name} is a generated column here but stored data in the archive.`,
        })
      }
    }
  }
  const blocking = issues.filter((i) => i.blocking)
  if (blocking.length > 0) {
    throw new LifecycleError(
      `The archive does not fit this database's schema (archive fingerprint ${m.fingerprint}):\n` +
        blocking.map((i) => `  - ${i.message}`).join('\n') +
        '\nNothing was imported. Bring the schema up to date (the app migrations that made the archive), then import again.',
    )
  }
  const tables = m.tables.map((t) => {
    const info = target.get(t.name)!
    const cols = t.columns.map((c) => c.name)
    return { name: t.name, info, copyColumns: cols, checksumColumns: cols.slice(1) }
  })
  return { tables, drift: issues }
}

/** @internal COPY text escaping of one field */
export function copyTextField(value: string): string {
  return value.replace(/[\\\t\n\r]/g, (c) =>
    c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r',
  )
}

/**
 * Rewrites the first field (the tenant column) of every COPY text line from
 * `from` to `to` (the same id: checks only); a line that does not start with
 * `from` throws (an archive row of another tenant is never loaded).
 *
 * @internal
 */
export async function* rewriteTenantColumn(
  chunks: AsyncIterable<Buffer>,
  from: string,
  to: string,
  single: boolean,
): AsyncGenerator<Buffer> {
  const sep = single ? '\n' : '\t'
  const prefix = Buffer.from(copyTextField(from) + sep)
  const replacement = Buffer.from(copyTextField(to) + sep)
  let carry: Buffer = Buffer.alloc(0)
  for await (const chunk of chunks) {
    const buf = carry.length > 0 ? Buffer.concat([carry, chunk]) : chunk
    const parts: Buffer[] = []
    let pos = 0
    for (;;) {
      const nl = buf.indexOf(10, pos)
      if (nl < 0) break
      if (buf.compare(prefix, 0, prefix.length, pos, pos + prefix.length) !== 0) {
        throw new LifecycleError(
          'The archive holds a row of another tenant (its tenant column is not the archived id): it was edited. Nothing was imported.',
        )
      }
      parts.push(replacement, buf.subarray(pos + prefix.length, nl + 1))
      pos = nl + 1
    }
    carry = buf.subarray(pos)
    if (parts.length > 0) yield Buffer.concat(parts)
  }
  if (carry.length > 0) throw new LifecycleError('The archive data ends in the middle of a row.')
}

async function chooseGuard(db: Queryable): Promise<'replica' | 'deferred'> {
  await db.query('savepoint rowtenancy_guard')
  try {
    await db.query('set local session_replication_role = replica')
    await db.query('release savepoint rowtenancy_guard')
    return 'replica'
  } catch (err) {
    if ((err as { code?: string }).code !== '42501') throw err
    await db.query('rollback to savepoint rowtenancy_guard')
    await db.query('set constraints all deferred')
    return 'deferred'
  }
}

async function insertTenantRow(
  db: Queryable,
  layout: TenantLayout,
  m: ArchiveHeader,
  tenantId: string,
  slugWanted: string | undefined,
): Promise<{ slug: string; skippedDomains: string[] }> {
  const tenants = quoteQualified(layout.tenantsSchema, 'tenants')
  const type = layout.idType
  const insert = (slug: string) =>
    db.query(
      `insert into ${tenants} (id, slug, name, status, created_at) values ($1::${type}, $2, $3, $4, $5::timestamptz)
       on conflict (slug) do nothing`,
      [tenantId, slug, m.tenant.name, m.tenant.status, m.tenant.createdAt],
    )
  let slug = slugWanted ?? m.tenant.slug
  if ((await insert(slug)).rowCount === 0) {
    if (slugWanted !== undefined) {
      throw new LifecycleError(
        `The slug ${JSON.stringify(slug)} is taken in this database: choose another (--slug).`,
      )
    }
    const suffix = `-${
      tenantId
        .replace(/[^a-z0-9]+/gi, '')
        .toLowerCase()
        .slice(0, 20) || 'x'
    }`
    slug = `${m.tenant.slug.slice(0, 63 - suffix.length).replace(/-+$/, '')}${suffix}`
    if ((await insert(slug)).rowCount === 0) {
      throw new LifecycleError(
        `The slugs ${m.tenant.slug} and ${slug} are both taken in this database: pass --slug.`,
      )
    }
  }
  const skippedDomains: string[] = []
  for (const d of m.tenant.domains) {
    const r = await db.query(
      `insert into ${quoteQualified(layout.tenantsSchema, 'tenant_domains')} (tenant_id, domain, is_primary)
       values ($1::${type}, $2, $3) on conflict do nothing`,
      [tenantId, d.domain, d.isPrimary],
    )
    if (r.rowCount === 0) skippedDomains.push(d.domain)
  }
  return { slug, skippedDomains }
}

/**
 * `rowtenancy tenants import`: loads an archive written by `exportTenant` into
 * this database in ONE transaction: checks the manifest and every hash, checks
 * the schema is compatible (drift reported as the migration reports it),
 * refuses an existing tenant (unless `replace`: erased first, same
 * transaction), creates the tenant row and domains, loads each table with
 * `COPY ... FROM STDIN` (the tenant column rewritten under `asTenantId`),
 * compares row counts and checksums with the manifest and looks for broken
 * foreign keys, moves sequences above the imported ids, then commits. Any
 * problem rolls everything back.
 *
 * @example
 * ```ts
 * const r = await importTenant({ db: other, in: 'acme.rtar', asTenantId: '42' })
 * r.tables // the same counts and checksums as the export's manifest
 * ```
 */
export async function importTenant(options: ImportOptions): Promise<ImportResult> {
  checkOptionTypes('importTenant', options, { db: 'pool', replace: 'boolean' }, ['db'])
  checkStreamOption('importTenant', 'in', options.in, 'read')
  if (options.slug !== undefined && normalizeSlug(options.slug) !== options.slug) {
    throw new InvalidInputError(
      `Invalid slug ${JSON.stringify(options.slug)} for the imported tenant: write it in canonical form (${JSON.stringify(normalizeSlug(options.slug))}).`,
    )
  }
  const ms = checkLockTimeout('importTenant', options.lockTimeoutMs)
  const key = options.archiveKey === undefined ? undefined : archiveKeyBytes(options.archiveKey)
  return explainLockWaits([{ db: options.db, layout: options }], ms, IMPORT_AFTERWARDS, () =>
    importOnce(options, ms, key),
  )
}

const IMPORT_AFTERWARDS =
  'Nothing was imported (its one transaction was rolled back): rerunning the command does the whole import.'

/** The import in its one transaction, its lock waits limited to `ms`. */
async function importOnce(
  options: ImportOptions,
  lockMs: number | undefined,
  key: Uint8Array | undefined,
): Promise<ImportResult> {
  const started = performance.now()
  const input = await openArchive(options.in)
  const reader = new ArchiveReader(input, key)
  let client: pg.PoolClient | undefined
  let failed = false
  try {
    // With a key, a file is proven signed before any database work, so a forged one drives no
    // erase, insert or COPY; the check as the bytes load covers a file changed in between.
    if (key !== undefined && typeof options.in === 'string') {
      await readArchiveManifest(options.in, key)
    }
    const header = parseManifest(await reader.manifest())
    client = await explainUnreachable(options.db, () => options.db.connect())
    const db = client
    await db.query('begin')
    await limitLockWaits(db, lockMs)
    const { layout, tenantId, tables, drift } = await prepareImport(db, options, header)
    options.onEvent?.({ type: 'start', op: 'import', tenantId, tables: tables.length, rows: 0 })
    const { replaced, reuse } = await makeRoom(db, layout, tenantId, header.tenant.slug, options)
    const { slug, skippedDomains } = reuse
      ? { slug: header.tenant.slug, skippedDomains: [] as string[] }
      : await insertTenantRow(db, layout, header, tenantId, options.slug)
    await chooseGuard(db)
    const loaded = await loadTables(
      db,
      reader,
      layout,
      tables,
      header.tenant.id,
      tenantId,
      options.onEvent,
    )
    const { manifest, signature } = await readSummary(reader, header, loaded)
    const total = manifest.tables.reduce((n, t) => n + t.rows, 0)
    const checks = await verifyLoaded(db, layout, tenantId, tables, manifest, loaded)
    const sequences = await adjustSequences(
      db,
      layout.schema,
      tables.map((t) => t.name),
    )
    await db.query('commit')
    const ms = performance.now() - started
    options.onEvent?.({ type: 'done', op: 'import', rows: total, ms })
    return {
      tenantId,
      slug,
      tables: checks.map(importedTable),
      sequences,
      drift,
      skippedDomains,
      replaced,
      signature,
      rows: total,
      ms,
    }
  } catch (err) {
    failed = true
    await client?.query('rollback').catch(() => {})
    throw err
  } finally {
    client?.release(failed ? true : undefined)
    input.destroy()
  }
}

/** What the result says of one imported table: its rows and checksum in the database. */
function importedTable(
  c: Awaited<ReturnType<typeof checkTables>>[number],
): ImportResult['tables'][number] {
  return { table: c.table, rows: c.targetRows, checksum: c.targetChecksum }
}

/**
 * Prepares the open transaction: text settings pinned, the layout resolved,
 * the tenant id parsed, the archive's tables matched to the database's, the
 * tenant bound and locked.
 */
async function prepareImport(db: pg.PoolClient, options: ImportOptions, header: ArchiveHeader) {
  await pinTextSettings(db)
  const layout = await resolveLayout(db, {
    ...options,
    schema: options.schema ?? header.schema,
  })
  const tenantId = parseTenantId(layout.idType, options.asTenantId ?? header.tenant.id)
  const { tables, drift } = checkCompatible(header, layout, (await tenantTables(db, layout)).tables)
  await bindTenant(db, tenantId)
  await lockTenant(db, tenantId)
  return { layout, tenantId, tables, drift }
}

/** The archive stream of `source`: a file path (checked readable) or a stream. */
async function openArchive(source: ImportOptions['in']): Promise<Readable> {
  if (typeof source === 'string') {
    await assertReadableFile(source, 'the archive', 'nothing was imported')
    return createReadStream(source, { highWaterMark: 256 * 1024 })
  }
  return source
}

/**
 * Where the tenant already exists: erases it (`replace`, only when it is the
 * archive's tenant by slug), reuses its empty row (`reuseEmptyTenant`), or refuses.
 */
async function makeRoom(
  db: Queryable,
  layout: TenantLayout,
  tenantId: string,
  archivedSlug: string,
  options: ImportOptions,
): Promise<{ replaced: boolean; reuse: boolean }> {
  const exists = await db.query(
    `select slug from ${quoteQualified(layout.tenantsSchema, 'tenants')} where id = $1::${layout.idType} for update`,
    [tenantId],
  )
  let replaced = false
  let reuse = false
  if (exists.rows.length > 0) {
    const all = (await tenantTables(db, layout)).tables
    const here = exists.rows[0].slug as string
    if (options.replace && here !== archivedSlug) {
      throw new LifecycleError(
        `--replace: tenant ${tenantId} here is ${JSON.stringify(here)}, the archive's tenant is ${JSON.stringify(archivedSlug)}; ` +
          'replace erases only the same tenant. Import under --as-tenant-id, or erase that tenant first. Nothing was changed.',
      )
    }
    if (options.replace) {
      await eraseInTransaction(db, layout, tenantId, all, { keepTenantRow: false })
      replaced = true
    } else if (options.reuseEmptyTenant && (await ownsNoRows(db, layout, tenantId, all))) {
      reuse = true
    } else {
      throw new LifecycleError(
        `Tenant ${tenantId} already exists in this database. Pass --replace to erase it first ` +
          '(in the same transaction), or --as-tenant-id to import under another id.',
      )
    }
  }
  return { replaced, reuse }
}

/** COPYs each table's rows from the archive (the tenant column rewritten under another id); returns the rows per table. */
async function loadTables(
  db: pg.PoolClient,
  reader: ArchiveReader,
  layout: TenantLayout,
  tables: readonly LifecycleTable[],
  archivedId: string,
  tenantId: string,
  onEvent: LifecycleListener | undefined,
): Promise<number[]> {
  const loaded: number[] = []
  for (const [i, t] of tables.entries()) {
    const copy = db.query(
      copyFrom(
        `copy ${quoteQualified(layout.schema, t.name)} (${t.copyColumns.map(quoteIdent).join(', ')}) from stdin`,
      ),
    )
    // Every row's tenant column is checked, also under the archived id: a row of another
    // tenant is never loaded (COPY runs as the owner, past row level security).
    const source = rewriteTenantColumn(
      reader.table(i),
      archivedId,
      tenantId,
      t.copyColumns.length === 1,
    )
    try {
      await pipeline(source, copy)
    } catch (err) {
      throw explainCopyError(err, t.name)
    }
    loaded.push(Number(copy.rowCount ?? -1))
    onEvent?.({
      type: 'table',
      op: 'import',
      table: t.name,
      rows: loaded[i]!,
      index: i,
      of: tables.length,
    })
  }
  return loaded
}

/** The manifest with the archive's summary, once the rows each table loaded are those it lists. */
async function readSummary(
  reader: ArchiveReader,
  header: ArchiveHeader,
  loaded: readonly number[],
): Promise<{ manifest: ArchiveManifest; signature: ArchiveSignatureState }> {
  const manifest = withSummary(header, await reader.summary())
  const { signature } = await reader.finish()
  checkLoadedCounts(manifest, loaded)
  return { manifest, signature }
}

/** Throws when a table loaded another number of rows than the archive's summary says. */
function checkLoadedCounts(manifest: ArchiveManifest, loaded: readonly number[]): void {
  for (const [i, t] of manifest.tables.entries()) {
    if (loaded[i] !== t.rows) {
      throw new LifecycleError(
        `${t.name}: the archive holds ${loaded[i]} rows but its summary says ${t.rows}: the archive was edited. Nothing was imported.`,
      )
    }
  }
}

/** Checks the loaded rows (counts, checksums, orphans) against the manifest; throws on any mismatch. */
async function verifyLoaded(
  db: Queryable,
  layout: TenantLayout,
  tenantId: string,
  tables: readonly LifecycleTable[],
  manifest: ArchiveManifest,
  loaded: readonly number[],
): Promise<Awaited<ReturnType<typeof checkTables>>> {
  const ctx = lifecycleContext(layout, tenantId)
  const checks = await checkTables(
    db,
    ctx,
    tables.map((t, i) => ({
      table: asTablePlan(t),
      expected: { rows: manifest.tables[i]!.rows, checksum: manifest.tables[i]!.checksum },
    })),
    { orphans: true, source: false },
  )
  // Every row COPY loaded is the tenant's: none went to another tenant.
  const elsewhere = checks.filter((c, i) => c.targetRows !== loaded[i])
  if (elsewhere.length > 0) {
    throw new LifecycleError(
      `After loading, rows of ${elsewhere.map((c) => c.table).join(', ')} are not all tenant ${tenantId}'s ` +
        `(loaded ${elsewhere.map((c) => loaded[checks.indexOf(c)]).join(', ')}, the tenant holds ` +
        `${elsewhere.map((c) => c.targetRows).join(', ')}): the archive was edited. Nothing was imported.`,
    )
  }
  const problems = checks.filter((c) => !c.ok)
  if (problems.length > 0) {
    throw new LifecycleError(
      `After loading, the tenant's rows do not match the archive's manifest: ${problems
        .map(
          (c) =>
            `${describeCheck(c)} (archive: ${manifest.tables.find((t) => t.name === c.table)?.rows} rows)`,
        )
        .join('; ')}. Nothing was imported.`,
    )
  }
  return checks
}

async function ownsNoRows(
  db: Queryable,
  layout: TenantLayout,
  tenantId: string,
  tables: readonly LifecycleTable[],
): Promise<boolean> {
  for (const t of tables) {
    const { rows } = await db.query(
      `select exists (select 1 from ${quoteQualified(layout.schema, t.name)} where ${quoteIdent(layout.tenantColumn)} = $1::${layout.idType}) as found`,
      [tenantId],
    )
    if (rows[0]?.found) return false
  }
  return true
}

function explainCopyError(err: unknown, table: string): unknown {
  const e = err as { code?: string; message?: string }
  if (e?.code === '0A000' && /row-level security/i.test(e.message ?? '')) {
    return new LifecycleError(
      `Cannot load ${table}: COPY FROM is refused for a role that row level security applies to. ` +
        "Import as the tables' owner with BYPASSRLS, or as a superuser (the admin database URL).",
      { cause: err },
    )
  }
  if (typeof e?.code === 'string' && e.code.startsWith('22')) {
    return new LifecycleError(
      `Cannot load ${table}: ${e.message}. The archive's data does not fit this table (edited archive or incompatible types). Nothing was imported.`,
      { cause: err },
    )
  }
  return err
}
