import type { Queryable } from '../sql/queryable.js'
import { quoteQualified } from '../sql/quote.js'
import type { ArchiveManifest } from './manifest.js'

/** The move ledger's table, in the catalog database. @example `MOVE_LEDGER // 'rowtenancy_tenant_move'` */
export const MOVE_LEDGER = 'rowtenancy_tenant_move'

/**
 * The steps of a move, in order; the ledger records the last one finished.
 * `stale`: the source changed after the export, the copy must be redone.
 */
export type MoveState =
  | 'suspended'
  | 'exported'
  | 'imported'
  | 'verified'
  | 'switched'
  | 'done'
  | 'stale'

/**
 * One move, as the ledger holds it.
 */
export interface MoveEntry {
  readonly tenantId: string
  readonly source: string
  readonly destination: string
  readonly state: MoveState
  readonly previousStatus: string
  readonly archive: string
  /**
   * The manifest of the move's export (tables, counts, checksums), recorded with
   * the step `exported`: what an import of it writes at the destination.
   */
  readonly exported?: ArchiveManifest | undefined
  /** Whether the ledger recorded the import (from the step `imported` until the copy is removed). */
  readonly copied?: boolean | undefined
}

/** The states whose entry proves the import happened, in ledgers that hold no `copied` column value. */
const AFTER_IMPORT: readonly MoveState[] = ['imported', 'verified', 'switched', 'done']

/** @internal */
export async function ensureMoveLedger(db: Queryable, schema: string): Promise<void> {
  await db.query(`create table if not exists ${quoteQualified(schema, MOVE_LEDGER)} (
  tenant_id text primary key,
  source text not null,
  destination text not null,
  state text not null,
  previous_status text not null,
  archive text not null,
  started_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
)`)
  // A ledger made before these columns gains them (altered only then: ALTER locks the table).
  const { rows } = await db.query(
    `select count(*)::int as n from pg_catalog.pg_attribute
      where attrelid = $1::regclass and attname in ('exported_manifest', 'copied') and not attisdropped`,
    [quoteQualified(schema, MOVE_LEDGER)],
  )
  if (rows[0].n === 2) return
  await db.query(`alter table ${quoteQualified(schema, MOVE_LEDGER)}
  add column if not exists exported_manifest jsonb,
  add column if not exists copied boolean not null default false`)
}

/** @internal */
export async function readMove(
  db: Queryable,
  schema: string,
  tenantId: string,
): Promise<MoveEntry | undefined> {
  const { rows } = await db.query(
    `select tenant_id, source, destination, state, previous_status, archive, exported_manifest, copied
       from ${quoteQualified(schema, MOVE_LEDGER)} where tenant_id = $1`,
    [tenantId],
  )
  const r = rows[0]
  return r
    ? {
        tenantId: r.tenant_id,
        source: r.source,
        destination: r.destination,
        state: r.state,
        previousStatus: r.previous_status,
        archive: r.archive,
        exported: r.exported_manifest ?? undefined,
        copied: r.copied === true || AFTER_IMPORT.includes(r.state),
      }
    : undefined
}

/** @internal */
export async function writeMove(db: Queryable, schema: string, e: MoveEntry): Promise<void> {
  await db.query(
    `insert into ${quoteQualified(schema, MOVE_LEDGER)} (tenant_id, source, destination, state, previous_status, archive)
     values ($1, $2, $3, $4, $5, $6)
     on conflict (tenant_id) do update set source = excluded.source, destination = excluded.destination,
       state = excluded.state, previous_status = excluded.previous_status, archive = excluded.archive,
       exported_manifest = null, copied = false, updated_at = now()`,
    [e.tenantId, e.source, e.destination, e.state, e.previousStatus, e.archive],
  )
}

/** @internal */
export async function setMoveState(
  db: Queryable,
  schema: string,
  tenantId: string,
  state: MoveState,
): Promise<void> {
  await db.query(
    `update ${quoteQualified(schema, MOVE_LEDGER)} set state = $2, updated_at = now() where tenant_id = $1`,
    [tenantId, state],
  )
}

/** Records the step `exported` with the export's manifest. @internal */
export async function recordExport(
  db: Queryable,
  schema: string,
  tenantId: string,
  manifest: ArchiveManifest,
): Promise<void> {
  await db.query(
    `update ${quoteQualified(schema, MOVE_LEDGER)} set state = 'exported', exported_manifest = $2::jsonb,
       updated_at = now() where tenant_id = $1`,
    [tenantId, JSON.stringify(manifest)],
  )
}

/** Records the step `imported`: the tenant's rows at the destination are the move's copy. @internal */
export async function recordImport(db: Queryable, schema: string, tenantId: string): Promise<void> {
  await db.query(
    `update ${quoteQualified(schema, MOVE_LEDGER)} set state = 'imported', copied = true, updated_at = now()
       where tenant_id = $1`,
    [tenantId],
  )
}

/**
 * Records the step `stale` (the copy is to be removed and the tenant copied
 * anew); `copied`: the destination holds the move's copy (its import happened).
 *
 * @internal
 */
export async function recordStale(
  db: Queryable,
  schema: string,
  tenantId: string,
  copied: boolean,
): Promise<void> {
  await db.query(
    `update ${quoteQualified(schema, MOVE_LEDGER)} set state = 'stale', copied = copied or $2,
       updated_at = now() where tenant_id = $1`,
    [tenantId, copied],
  )
}

/** Records that the move's copy is removed and the tenant is to be copied anew (`suspended`). @internal */
export async function recordCopyRemoved(
  db: Queryable,
  schema: string,
  tenantId: string,
): Promise<void> {
  await db.query(
    `update ${quoteQualified(schema, MOVE_LEDGER)} set state = 'suspended', exported_manifest = null,
       copied = false, updated_at = now() where tenant_id = $1`,
    [tenantId],
  )
}

/** @internal */
export async function deleteMove(db: Queryable, schema: string, tenantId: string): Promise<void> {
  await db.query(`delete from ${quoteQualified(schema, MOVE_LEDGER)} where tenant_id = $1`, [
    tenantId,
  ])
}
