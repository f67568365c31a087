import {
  type Grant,
  grantsOfStatement,
  revokeAllButOwner,
  revokeGrants,
} from '../sql/privileges.js'
import { onOneConnection, type Queryable } from '../sql/queryable.js'
import { quoteIdent, quoteLiteral, quoteQualified } from '../sql/quote.js'
import type { IdStrategy } from './types.js'

/**
 * The name of the ledger table (in the target schema).
 *
 * @example
 * ```ts
 * LEDGER_TABLE // 'rowtenancy_migration'
 * ```
 */
export const LEDGER_TABLE = 'rowtenancy_migration'

/**
 * The name of the id mapping table kept by the `remap` strategy (for audit).
 *
 * @example
 * ```ts
 * ID_MAP_TABLE // 'rowtenancy_id_map'
 * ```
 */
export const ID_MAP_TABLE = 'rowtenancy_id_map'

/**
 * What the ledger knows about one table of one tenant.
 */
export interface LedgerTable {
  readonly rows: number
  /** The order-independent checksum of the copied rows (target side, at copy time); `''` when copied with `verify: false` (filled in by drop-schemas). */
  readonly checksum: string
  /** The columns the checksum covers, in order (so it can be recomputed after the schema is dropped). */
  readonly columns: readonly string[]
}

/**
 * A tenant's ledger row.
 *
 * @example
 * ```ts
 * const e = (await readLedger(pool, 'public')).get('7')
 * e?.state // 'done'
 * ```
 */
export interface LedgerEntry {
  readonly tenantId: string
  readonly schema: string
  /** `pending` (failed, nothing copied), `partial` (some tables, `models`), `done`, `rolled_back`, `schema_dropped`. */
  readonly state: 'pending' | 'partial' | 'done' | 'rolled_back' | 'schema_dropped'
  readonly idStrategy: IdStrategy
  readonly tables: Readonly<Record<string, LedgerTable>>
  readonly createdTenant: boolean
  readonly startedAt: Date | null
  readonly finishedAt: Date | null
  readonly verifiedAt: Date | null
  readonly verifyOk: boolean | null
  readonly lastError: string | null
}

/**
 * Creates the ledger table (and, for `remap`, the id map) when missing. Idempotent
 * and safe against concurrent runs.
 *
 * @example
 * ```ts
 * await ensureLedger(pool, 'public', { idMap: false })
 * ```
 */
export async function ensureLedger(
  db: Queryable,
  schema: string,
  options: { idMap?: boolean } = {},
): Promise<void> {
  await onOneConnection(db, (client) => createLedger(client, schema, options))
}

async function createLedger(
  db: Queryable,
  schema: string,
  options: { idMap?: boolean },
): Promise<void> {
  try {
    await openLedger(db, schema, options)
    await db.query('commit')
  } catch (err) {
    await db.query('rollback').catch(() => {})
    throw err
  }
}

/**
 * {@link ensureLedger} up to its COMMIT, on one connection (`db`): opens a transaction, takes
 * the ledger's lock, and creates the ledger (and, for `remap`, the id map) when missing. The
 * caller commits, or rolls back to leave nothing behind; until then other runs wait for the
 * lock.
 *
 * @example
 * ```ts
 * await openLedger(client, 'public', {})
 * await client.query('commit')
 * ```
 * @internal
 */
export async function openLedger(
  db: Queryable,
  schema: string,
  options: { idMap?: boolean },
): Promise<void> {
  const ledger = quoteQualified(schema, LEDGER_TABLE)
  const map = quoteQualified(schema, ID_MAP_TABLE)
  // Looked up first: on Citus, CREATE TABLE IF NOT EXISTS on an existing table still asks
  // for its ownership, and a role that may write the ledger need not own it. Looked up after
  // the lock, in a statement of its own that scans the catalog: its snapshot sees a ledger
  // another run created while this one waited.
  const missing = (name: string) =>
    `not exists (select 1 from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace ` +
    `where n.nspname = ${quoteLiteral(schema)} and c.relname = ${quoteLiteral(name)})`
  const opened = await db.query(
    "begin; select pg_advisory_xact_lock(hashtext('rowtenancy.ledger')); " +
      `select ${missing(LEDGER_TABLE)} as ledger, ${missing(ID_MAP_TABLE)} as map`,
  )
  const absent = (opened as unknown as { rows: { ledger: boolean; map: boolean }[] }[]).at(-1)!
    .rows[0]!
  // The schema's default privileges may give the app role DML on new tables: the ledger and
  // the id map steer the migration and verify, so only their owner touches them.
  if (absent.ledger) {
    const created = await db.query(`create table ${ledger} (
  tenant_id text primary key,
  schema_name text not null,
  state text not null check (state in ('pending', 'partial', 'done', 'rolled_back', 'schema_dropped')),
  id_strategy text not null check (id_strategy in ('composite', 'remap')),
  tables jsonb not null default '{}'::jsonb,
  created_tenant boolean not null default false,
  started_at timestamptz,
  finished_at timestamptz,
  verified_at timestamptz,
  verify_ok boolean,
  last_error text
); ${grantsOfStatement(quoteLiteral(ledger))}`)
    await revokeGrants(db, (created as unknown as { rows: Grant[] }[]).at(-1)!.rows)
  }
  if (options.idMap) await ensureIdMap(db, map, absent.map)
}

/**
 * The id map: old -> new key value per tenant and table; `scope` holds the other key
 * columns' old values when the old value alone is not unique (`''` otherwise). A map
 * made by an older version (no `scope`) gets the column and the wider key.
 */
async function ensureIdMap(db: Queryable, map: string, missing: boolean): Promise<void> {
  if (missing)
    await db.query(`create table ${map} (
  tenant_id text not null,
  table_name text not null,
  scope text not null default '',
  old_id bigint not null,
  new_id bigint not null,
  primary key (tenant_id, table_name, scope, old_id)
)`)
  if (missing) await revokeAllButOwner(db, map)
  const { rows } = await db.query(
    `select c.conname, exists (select 1 from pg_attribute a where a.attrelid = c.conrelid and a.attname = 'scope'
              and a.attnum = any(c.conkey)) as scoped
       from pg_constraint c where c.conrelid = $1::regclass and c.contype = 'p'`,
    [map],
  )
  if (rows[0]?.scoped === true) return
  await db.query(`alter table ${map} add column if not exists scope text not null default ''`)
  await db.query(
    `alter table ${map} ${rows[0] ? `drop constraint ${quoteIdent(rows[0].conname)}, ` : ''}` +
      'add primary key (tenant_id, table_name, scope, old_id)',
  )
}

/**
 * Whether the ledger table exists (a dry run never creates it).
 *
 * @example
 * ```ts
 * await ledgerExists(pool, 'public') // false before the first real run
 * ```
 */
export async function ledgerExists(db: Queryable, schema: string): Promise<boolean> {
  const { rows } = await db.query('select to_regclass($1) is not null as ok', [
    quoteQualified(schema, LEDGER_TABLE),
  ])
  return rows[0]?.ok === true
}

function toEntry(r: any): LedgerEntry {
  return {
    tenantId: r.tenant_id,
    schema: r.schema_name,
    state: r.state,
    idStrategy: r.id_strategy,
    tables: r.tables ?? {},
    createdTenant: r.created_tenant,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    verifiedAt: r.verified_at,
    verifyOk: r.verify_ok,
    lastError: r.last_error,
  }
}

/**
 * Reads the whole ledger (empty when the table does not exist).
 *
 * @example
 * ```ts
 * const ledger = await readLedger(pool, 'public')
 * [...ledger.values()].filter((e) => e.state === 'done').length
 * ```
 */
export async function readLedger(db: Queryable, schema: string): Promise<Map<string, LedgerEntry>> {
  if (!(await ledgerExists(db, schema))) return new Map()
  const { rows } = await db.query(
    `select * from ${quoteQualified(schema, LEDGER_TABLE)} order by tenant_id`,
  )
  return new Map(rows.map((r) => [r.tenant_id as string, toEntry(r)]))
}

/**
 * Reads one tenant's ledger row and locks it for the rest of the transaction.
 *
 * @example
 * ```ts
 * const entry = await lockLedgerEntry(client, 'public', '7')
 * ```
 * @internal
 */
export async function lockLedgerEntry(
  db: Queryable,
  schema: string,
  tenantId: string,
): Promise<LedgerEntry | undefined> {
  const { rows } = await db.query(lockLedgerEntryStatement(schema, '$1'), [tenantId])
  return ledgerEntryOf(rows[0])
}

/**
 * The statement of {@link lockLedgerEntry}; `tenant` is `$1` or a quoted literal (to
 * send it with others in one round trip). Read its row with {@link ledgerEntryOf}.
 *
 * @example
 * ```ts
 * lockLedgerEntryStatement('public', "'7'") // 'select * from "public"."rowtenancy_migration" where tenant_id = \'7\' for update'
 * ```
 * @internal
 */
export function lockLedgerEntryStatement(schema: string, tenant: string): string {
  return `select * from ${quoteQualified(schema, LEDGER_TABLE)} where tenant_id = ${tenant} for update`
}

/**
 * A ledger row as read from the table, as a {@link LedgerEntry} (`undefined` for none).
 *
 * @example
 * ```ts
 * ledgerEntryOf(rows[0])?.state // 'done'
 * ```
 * @internal
 */
export function ledgerEntryOf(row: unknown): LedgerEntry | undefined {
  return row ? toEntry(row) : undefined
}

/**
 * Writes a tenant's ledger row (insert or replace), inside the caller's transaction; with
 * `commit`, commits that transaction in the same round trip (the values then go as literals,
 * the two statements as one simple query: an error in the insert skips the COMMIT).
 *
 * @example
 * ```ts
 * await writeLedgerEntry(client, 'public', { ...entry, state: 'done' })
 * ```
 * @internal
 */
export async function writeLedgerEntry(
  db: Queryable,
  schema: string,
  e: LedgerEntry,
  options: { commit?: boolean } = {},
): Promise<void> {
  const values = [
    e.tenantId,
    e.schema,
    e.state,
    e.idStrategy,
    JSON.stringify(e.tables),
    e.createdTenant,
    e.startedAt,
    e.finishedAt,
    e.verifiedAt,
    e.verifyOk,
    e.lastError,
  ]
  const casts = [
    'text',
    'text',
    'text',
    'text',
    'jsonb',
    'boolean',
    'timestamptz',
    'timestamptz',
    'timestamptz',
    'boolean',
    'text',
  ]
  const slots = options.commit
    ? values.map((v, i) => `${literalOf(v)}::${casts[i]}`)
    : values.map((_v, i) => `$${i + 1}::${casts[i]}`)
  const insert = `insert into ${quoteQualified(schema, LEDGER_TABLE)} as l
       (tenant_id, schema_name, state, id_strategy, tables, created_tenant, started_at, finished_at,
        verified_at, verify_ok, last_error)
     values (${slots.join(', ')})
     on conflict (tenant_id) do update set schema_name = excluded.schema_name, state = excluded.state,
       id_strategy = excluded.id_strategy, tables = excluded.tables, created_tenant = excluded.created_tenant,
       started_at = excluded.started_at, finished_at = excluded.finished_at,
       verified_at = excluded.verified_at, verify_ok = excluded.verify_ok, last_error = excluded.last_error`
  if (options.commit) await db.query(`${insert}; commit`)
  else await db.query(insert, values)
}

/** A ledger value as an SQL literal: `null`, `true`/`false`, a timestamp in ISO form, or quoted text. */
function literalOf(v: unknown): string {
  if (v === null || v === undefined) return 'null'
  if (typeof v === 'boolean') return v ? 'true' : 'false'
  if (v instanceof Date) return quoteLiteral(v.toISOString())
  return quoteLiteral(String(v))
}

/**
 * Records why a tenant failed, without touching what an earlier run copied.
 *
 * @example
 * ```ts
 * await recordFailure(pool, 'public', '7', 'tenant_7', 'composite', 'checksum mismatch in book')
 * ```
 * @internal
 */
export async function recordFailure(
  db: Queryable,
  schema: string,
  tenantId: string,
  schemaName: string,
  idStrategy: IdStrategy,
  message: string,
): Promise<void> {
  await db.query(
    `insert into ${quoteQualified(schema, LEDGER_TABLE)} (tenant_id, schema_name, state, id_strategy, last_error)
     values ($1, $2, 'pending', $3, $4)
     on conflict (tenant_id) do update set last_error = excluded.last_error`,
    [tenantId, schemaName, idStrategy, message.slice(0, 2000)],
  )
}
