import type { Queryable } from '../sql/queryable.js'
import { quoteQualified } from '../sql/quote.js'

/** The move ledger's table, in the catalog database. @example `MOVE_LEDGER // 'rowtenancy_tenant_move'` */
export const MOVE_LEDGER = 'rowtenancy_tenant_move'

/**
 * The steps of a move, in order; the ledger records the last one finished.
 * `stale`: the source changed after the export, the copy must be redone.
 *
 * @example
 * ```ts
 * const s: MoveState = 'verified'
 * ```
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
 *
 * @example
 * ```ts
 * const e: MoveEntry = { tenantId: '7', source: 'default', destination: 'eu-2', state: 'exported', previousStatus: 'active', archive: '/tmp/t7.rtar' }
 * ```
 */
export interface MoveEntry {
  readonly tenantId: string
  readonly source: string
  readonly destination: string
  readonly state: MoveState
  readonly previousStatus: string
  readonly archive: string
}

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
}

/** @internal */
export async function readMove(
  db: Queryable,
  schema: string,
  tenantId: string,
): Promise<MoveEntry | undefined> {
  const { rows } = await db.query(
    `select tenant_id, source, destination, state, previous_status, archive from ${quoteQualified(schema, MOVE_LEDGER)} where tenant_id = $1`,
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
      }
    : undefined
}

/** @internal */
export async function writeMove(db: Queryable, schema: string, e: MoveEntry): Promise<void> {
  await db.query(
    `insert into ${quoteQualified(schema, MOVE_LEDGER)} (tenant_id, source, destination, state, previous_status, archive)
     values ($1, $2, $3, $4, $5, $6)
     on conflict (tenant_id) do update set source = excluded.source, destination = excluded.destination,
       state = excluded.state, previous_status = excluded.previous_status, archive = excluded.archive, updated_at = now()`,
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

/** @internal */
export async function deleteMove(db: Queryable, schema: string, tenantId: string): Promise<void> {
  await db.query(`delete from ${quoteQualified(schema, MOVE_LEDGER)} where tenant_id = $1`, [
    tenantId,
  ])
}
