import { readFileSync } from 'node:fs'
import { LifecycleError } from '../errors/index.js'
import { normalizeDomain, normalizeSlug } from '../tenants/normalize.js'
import type { TableChecksum } from './checksums.js'

/**
 * What an archive says about itself, written before the data.
 *
 * @example
 * ```ts
 * manifest.tables.map((t) => `${t.name}: ${t.rows} rows`)
 * ```
 */
export interface ArchiveManifest {
  readonly format: 'rowtenancy-tenant-archive'
  readonly formatVersion: 1
  /** The rowtenancy version that wrote it. */
  readonly rowtenancy: string
  readonly createdAt: string
  /** How each table's rows are encoded: PostgreSQL's COPY text format (as pg_dump writes it). */
  readonly copyFormat: 'text'
  readonly source: { readonly database: string; readonly serverVersion: string }
  readonly schema: string
  readonly tenantsSchema: string
  readonly tenantColumn: string
  readonly idType: 'bigint' | 'integer' | 'uuid' | 'text'
  readonly tenant: ManifestTenant
  /** A fingerprint of the tables' shape (names, columns, types). */
  readonly fingerprint: string
  /** The tenant tables in foreign-key order; the data sections follow in this order (counts and checksums from the archive's summary). */
  readonly tables: readonly ManifestTable[]
  /** Tables caught in foreign-key cycles. */
  readonly cyclic: readonly string[]
}

/**
 * The tenant row and its domains, as exported.
 */
export interface ManifestTenant {
  readonly id: string
  readonly slug: string
  readonly name: string
  readonly status: string
  readonly createdAt: string
  readonly domains: readonly { readonly domain: string; readonly isPrimary: boolean }[]
}

/**
 * One table of an archive: its columns and types, and the tenant's row count and
 * checksum (the statement `verify` uses).
 */
export interface ManifestTable extends TableChecksum {
  readonly name: string
  /** The columns of the COPY data, in order (the tenant column first). */
  readonly columns: readonly {
    readonly name: string
    readonly type: string
    readonly typeKind?: string
    readonly enumLabels?: readonly string[]
  }[]
}

/** @internal the package version */
export function rowtenancyVersion(): string {
  try {
    return String(
      JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version,
    )
  } catch {
    return 'unknown'
  }
}

/**
 * The manifest as the archive's head holds it: the tables without counts and checksums.
 *
 * @internal
 */
export type ArchiveHeader = Omit<ArchiveManifest, 'tables'> & {
  readonly tables: readonly Omit<ManifestTable, 'rows' | 'checksum' | 'table'>[]
}

/**
 * Checks the archive's summary (one count and checksum per table, in order) and
 * merges it into the header.
 *
 * @internal
 */
export function withSummary(header: ArchiveHeader, text: string): ArchiveManifest {
  let sums: { table: string; rows: number; checksum: string }[]
  try {
    sums = JSON.parse(text).tables
  } catch (err) {
    throw new LifecycleError('The archive summary is not valid JSON: the archive is damaged.', {
      cause: err,
    })
  }
  if (!Array.isArray(sums) || sums.length !== header.tables.length) {
    throw new LifecycleError(
      'The archive summary does not list every table: the archive is damaged.',
    )
  }
  const tables = header.tables.map((t, i) => {
    const s = sums[i]
    if (
      s?.table !== t.name ||
      !Number.isSafeInteger(s.rows) ||
      s.rows < 0 ||
      typeof s.checksum !== 'string'
    ) {
      throw new LifecycleError(
        `The archive summary has no valid count or checksum for ${t.name}: the archive is damaged.`,
      )
    }
    return { ...t, table: t.name, rows: s.rows, checksum: s.checksum }
  })
  return { ...header, tables }
}

/**
 * Parses and checks the manifest JSON at the head of an archive.
 *
 * @internal
 */
export function parseManifest(text: string): ArchiveHeader {
  let m: ArchiveHeader
  try {
    m = JSON.parse(text)
  } catch (err) {
    throw new LifecycleError('The archive manifest is not valid JSON: the archive is damaged.', {
      cause: err,
    })
  }
  const bad = (what: string) =>
    new LifecycleError(`The archive manifest is invalid: ${what}. Export the tenant again.`)
  if (m?.format !== 'rowtenancy-tenant-archive') throw bad('not a rowtenancy tenant archive')
  if (m.formatVersion !== 1) {
    throw bad(`format version ${JSON.stringify(m.formatVersion)} is not supported (this reads 1)`)
  }
  if (m.copyFormat !== 'text') throw bad('unknown COPY format')
  if (!m.tenant || typeof m.tenant.id !== 'string') throw bad('no tenant')
  const problem = tenantProblem(m.tenant)
  if (problem !== undefined) throw bad(`its tenant ${problem}`)
  if (!Array.isArray(m.tables)) throw bad('no tables')
  for (const t of m.tables) {
    if (typeof t?.name !== 'string' || !Array.isArray(t.columns) || t.columns.length === 0) {
      throw bad('a table without a name or columns')
    }
    if (t.columns[0]!.name !== m.tenantColumn)
      throw bad(`${t.name} does not start with the tenant column`)
  }
  return m
}

/**
 * Reads the manifest of an archive file with its counts and checksums (the
 * whole file is read: every hash is checked, the rows are skipped).
 *
 * @example
 * ```ts
 * const m = await readArchiveManifest('acme.rtar')
 * ```
 *
 * With `archiveKey`, an archive not signed with that key throws.
 */
export async function readArchiveManifest(
  path: string,
  archiveKey?: string | Uint8Array,
): Promise<ArchiveManifest> {
  const { createReadStream } = await import('node:fs')
  const { ArchiveReader, archiveKeyBytes } = await import('./archive-format.js')
  const key = archiveKey === undefined ? undefined : archiveKeyBytes(archiveKey)
  const { assertReadableFile } = await import('./files.js')
  await assertReadableFile(path, 'the archive', 'nothing was read')
  const input = createReadStream(path, { highWaterMark: 256 * 1024 })
  try {
    const reader = new ArchiveReader(input, key)
    const header = parseManifest(await reader.manifest())
    for (const [i] of header.tables.entries()) {
      for await (const _chunk of reader.table(i)) {
        // skipped: only the hashes matter here
      }
    }
    const manifest = withSummary(header, await reader.summary())
    await reader.finish()
    return manifest
  } finally {
    input.destroy()
  }
}

/** What is wrong with an archived tenant row (slug, name, status, creation time, domains), if anything. */
function tenantProblem(t: ManifestTenant): string | undefined {
  const canonical = (normalize: (v: unknown) => string, value: unknown) => {
    try {
      return normalize(value) === value
    } catch {
      return false
    }
  }
  if (!canonical(normalizeSlug, t.slug)) return `slug ${JSON.stringify(t.slug)} is not a valid slug`
  if (typeof t.name !== 'string') return 'name is not a text'
  if (t.status !== 'active' && t.status !== 'suspended') {
    return `status ${JSON.stringify(t.status)} is not active or suspended`
  }
  if (typeof t.createdAt !== 'string' || !Number.isFinite(Date.parse(t.createdAt))) {
    return 'creation time is not a timestamp'
  }
  if (!Array.isArray(t.domains)) return 'domains are not a list'
  for (const d of t.domains) {
    if (!canonical(normalizeDomain, d?.domain) || typeof d.isPrimary !== 'boolean') {
      return `domain ${JSON.stringify(d?.domain)} is not a domain name in canonical form with isPrimary`
    }
  }
  return undefined
}
