import { InvalidInputError } from '../errors/index.js'
import { inTransaction, type Queryable } from '../sql/queryable.js'
import { quoteIdent, quoteQualified } from '../sql/quote.js'

/**
 * Where the audit log lives: `audit_log` by default, or `schema.table`.
 */
export interface AuditLogTableOptions {
  readonly table?: string | undefined
}

/**
 * One column of the audit log, declared as data and rendered by {@link auditLogDdl}.
 *
 * @example
 * ```ts
 * AUDIT_LOG_COLUMNS.find((c) => c.name === 'reason') // { name: 'reason', type: 'text not null', ... }
 * ```
 */
export interface AuditLogColumn {
  readonly name: string
  readonly type: string
  readonly comment: string
}

/**
 * The columns of the audit log table.
 *
 * @example
 * ```ts
 * AUDIT_LOG_COLUMNS.map((c) => c.name) // ['id', 'at', 'source', 'reason', 'actor', ...]
 * ```
 */
export const AUDIT_LOG_COLUMNS: readonly AuditLogColumn[] = Object.freeze([
  { name: 'id', type: 'bigint generated always as identity primary key', comment: 'event id' },
  { name: 'at', type: 'timestamptz not null default now()', comment: 'when the statement ran' },
  {
    name: 'source',
    type: "text not null check (source in ('allObjects', 'withoutTenant'))",
    comment: 'the cross-tenant door used',
  },
  { name: 'reason', type: 'text not null', comment: 'why cross-tenant access was needed' },
  { name: 'actor', type: 'text', comment: 'who asked' },
  { name: 'tenant_context', type: 'text', comment: 'tenant in context at the time, if any' },
  { name: 'statement', type: 'text not null', comment: 'SQL without values' },
  { name: 'fingerprint', type: 'text not null', comment: 'hash of the statement' },
  { name: 'row_count', type: 'bigint', comment: 'rows returned or touched; null on error' },
  { name: 'error', type: 'text', comment: 'error code when the statement failed' },
])

/**
 * Splits and validates the audit table option into schema and table.
 *
 * @example
 * ```ts
 * auditTableName('ops.audit_log') // { schema: 'ops', table: 'audit_log', quoted: '"ops"."audit_log"' }
 * ```
 */
export function auditTableName(name = 'audit_log'): {
  schema: string | undefined
  table: string
  quoted: string
} {
  const parts = typeof name === 'string' ? name.split('.') : []
  if (parts.length < 1 || parts.length > 2 || parts.some((p) => p.length === 0)) {
    throw new InvalidInputError(
      `Invalid audit table ${JSON.stringify(name)}: write "audit_log" or "schema.audit_log".`,
    )
  }
  const [schema, table] = parts.length === 2 ? [parts[0], parts[1]!] : [undefined, parts[0]!]
  return { schema, table, quoted: quoteQualified(schema, table) }
}

/**
 * The DDL of the audit log: one idempotent statement per element.
 *
 * @example
 * ```ts
 * auditLogDdl()
 * // ['create table if not exists "audit_log" (id bigint generated always as identity primary key, ...)',
 * //  'create index if not exists "audit_log_at_idx" on "audit_log" (at)']
 * ```
 */
export function auditLogDdl(options: AuditLogTableOptions = {}): string[] {
  const { schema, table, quoted } = auditTableName(options.table)
  const columns = AUDIT_LOG_COLUMNS.map((c) => `  ${quoteIdent(c.name)} ${c.type}`).join(',\n')
  const ddl: string[] = []
  if (schema !== undefined) ddl.push(`create schema if not exists ${quoteIdent(schema)}`)
  ddl.push(`create table if not exists ${quoted} (\n${columns}\n)`)
  ddl.push(
    `create index if not exists ${quoteIdent(`${table}_at_idx`.slice(0, 63))} on ${quoted} (at)`,
  )
  return ddl
}

/**
 * Creates the audit log table (idempotent), in one transaction.
 *
 * @example
 * ```ts
 * await installAuditLog(pool)
 * await installAuditLog(pool, { table: 'ops.audit_log' })
 * ```
 */
export async function installAuditLog(
  db: Queryable,
  options: AuditLogTableOptions = {},
): Promise<void> {
  const ddl = auditLogDdl(options)
  await inTransaction(db, async (tx) => {
    for (const statement of ddl) await tx.query(statement)
  })
}
