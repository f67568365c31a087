import { AuditWriteError, ConfigError, TenancyError } from '../errors/index.js'
import type { Queryable } from '../sql/queryable.js'
import { quoteQualified } from '../sql/quote.js'
import type { AuditEvent, AuditLogger, AuditSource } from './audit-event.js'
import { auditTableName } from './audit-log-table.js'
import { statementFingerprint } from './fingerprint.js'

/**
 * Options of {@link AuditWriter}.
 */
export interface AuditWriterOptions {
  /** Where events are written when `record` is given no connection. */
  readonly db?: Queryable | undefined
  /** The audit table, `audit_log` by default; `false` to only call the logger. */
  readonly table?: string | false | undefined
  /** Called with every event after it is written. */
  readonly logger?: AuditLogger | undefined
}

/**
 * What a caller knows about an audited statement before it runs.
 */
export interface AuditContext {
  readonly source: AuditSource
  readonly reason: string
  readonly actor: string | undefined
  readonly tenantId: string | undefined
}

/**
 * Writes audit events: one row per statement to the audit table, then the
 * logger hook. A failed write throws, so the audited call fails rather than go
 * unrecorded (a write statement that already ran stays done). Give it a
 * connection pool of its own (`createTenancy` does): a record written on the
 * audited statement's connection could be undone by user SQL there (a raw
 * `begin` ... `rollback`) or redirected by a temporary table.
 *
 * @example
 * ```ts
 * const writer = new AuditWriter({ db: pool, logger: (e) => console.info(e.reason) })
 * await writer.record(
 *   { source: 'allObjects', reason: 'export', actor: 'alice', tenantId: undefined },
 *   'select * from "accounts"',
 *   { rowCount: 12 },
 * )
 * ```
 */
export class AuditWriter {
  readonly #db: Queryable | undefined
  readonly #table: string | undefined
  readonly #logger: AuditLogger | undefined
  /** The insert, into the table's schema-qualified name once resolved (per database handle). */
  readonly #inserts = new WeakMap<Queryable, Promise<string>>()

  constructor(options: AuditWriterOptions) {
    this.#db = options.db
    this.#logger = options.logger
    if (options.table !== false) {
      auditTableName(options.table ?? 'audit_log')
      this.#table = options.table ?? 'audit_log'
    }
    Object.freeze(this)
  }

  /**
   * Whether records go to a database handle of the writer's own (`db`): then the
   * audited statement's connection is never written on, and nothing run there (a
   * raw `begin` ... `rollback`) can take a record back.
   *
   * @example
   * ```ts
   * new AuditWriter({ db: auditPool }).hasOwnDb // true
   * ```
   */
  get hasOwnDb(): boolean {
    return this.#db !== undefined
  }

  /**
   * `insert into "<schema>"."<table>" ...`: the table name resolved once to the
   * permanent table it names, so neither a search_path nor a temporary table of
   * the same name can take the rows.
   */
  #insertFor(db: Queryable): Promise<string> {
    let insert = this.#inserts.get(db)
    if (insert === undefined) {
      insert = this.#resolve(db)
      this.#inserts.set(db, insert)
      insert.catch(() => this.#inserts.delete(db))
    }
    return insert
  }

  async #resolve(db: Queryable): Promise<string> {
    const table = this.#table!
    const { schema, table: name } = auditTableName(table)
    const { rows } = await db.query(
      `select n.nspname as schema, c.relname as name, c.relpersistence as persistence
         from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
        where c.relname = $2 and c.relkind in ('r', 'p')
          and n.nspname = coalesce($1, (select s.nspname from pg_catalog.pg_namespace s
                                          where s.nspname = any (current_schemas(false))
                                            and exists (select 1 from pg_catalog.pg_class t
                                                         where t.relnamespace = s.oid and t.relname = $2
                                                           and t.relpersistence <> 't')
                                          order by array_position(current_schemas(false), s.nspname)
                                          limit 1))
          and c.relpersistence <> 't'`,
      [schema ?? null, name],
    )
    const row = rows[0] as { schema: string; name: string } | undefined
    if (row === undefined) {
      throw new ConfigError(
        `The audit table ${JSON.stringify(table)} does not exist, so cross-tenant work cannot be ` +
          'recorded and is refused. Create it once with installAuditLog(pool, { table }).',
      )
    }
    return (
      `insert into ${quoteQualified(row.schema, row.name)} ` +
      '(at, source, reason, actor, tenant_context, statement, fingerprint, row_count, error) ' +
      'values ($1, $2, $3, $4, $5, $6, $7, $8, $9)'
    )
  }

  /**
   * Records one statement. `outcome.error` marks a failed statement. `db` is
   * the connection to write on (the statement's own, so a full pool cannot
   * deadlock); the writer's `db` when left out.
   *
   * @example
   * ```ts
   * await writer.record(context, compiled.sql, { rowCount: result.rows.length })
   * ```
   */
  async record(
    context: AuditContext,
    sql: string,
    outcome: { rowCount: number | null; error?: unknown },
    db: Queryable | undefined = this.#db,
  ): Promise<AuditEvent> {
    const { statement, fingerprint } = statementFingerprint(sql)
    const event: AuditEvent = Object.freeze({
      at: new Date(),
      source: context.source,
      reason: context.reason,
      actor: context.actor,
      tenantId: context.tenantId,
      statement,
      fingerprint,
      rowCount: outcome.error === undefined ? outcome.rowCount : null,
      error: outcome.error === undefined ? undefined : errorCode(outcome.error),
    })
    if (this.#table !== undefined) {
      if (db === undefined) {
        throw new ConfigError('AuditWriter.record needs a database handle: pass one, or set db.')
      }
      const insert = await this.#insertFor(db)
      try {
        await db.query(insert, [
          event.at,
          event.source,
          event.reason,
          event.actor ?? null,
          event.tenantId ?? null,
          event.statement,
          event.fingerprint,
          event.rowCount,
          event.error ?? null,
        ])
      } catch (err) {
        const code = (err as { code?: string }).code
        if (code === '42P01' || code === '3F000') {
          this.#inserts.delete(db)
          throw new ConfigError(
            `The audit table ${JSON.stringify(this.#table)} does not exist, so cross-tenant work cannot be ` +
              'recorded and is refused. Create it once with installAuditLog(pool, { table }).',
            { cause: err },
          )
        }
        throw err
      }
    }
    await this.#logger?.(event)
    return event
  }

  /**
   * {@link record} of a statement that has run (`outcome.error` unset) or
   * failed: when the record fails after a statement that succeeded, the error
   * is an `AuditWriteError` (its effect stands: not "retry later"); a missing
   * audit table keeps its `ConfigError`.
   */
  recordAfter(
    context: AuditContext,
    sql: string,
    outcome: { rowCount: number | null; error?: unknown },
    db: Queryable | undefined = this.#db,
  ): Promise<void> {
    return this.record(context, sql, outcome, db).then(
      () => undefined,
      (err: unknown) => {
        throw outcome.error === undefined ? unaudited(err) : err
      },
    )
  }
}

function errorCode(error: unknown): string {
  if (error instanceof TenancyError) return error.code
  const code = (error as { code?: unknown } | null)?.code
  if (typeof code === 'string') return code
  return error instanceof Error ? error.name : 'ERROR'
}

/**
 * The error of an audit record that failed after its statement ran: an
 * {@link AuditWriteError} (not "retry later", even when the audit database was
 * merely unavailable: the statement's effect stands); a `ConfigError` (no
 * audit table) as it is.
 */
function unaudited(err: unknown): AuditWriteError | ConfigError {
  // A set-up error (no audit table) keeps its own message: nothing to retry there either.
  if (err instanceof ConfigError) return err
  const why = err instanceof Error && err.message ? err.message : String(err)
  return new AuditWriteError(
    `The statement ran, but its audit record could not be written: ${why} ` +
      'Its effect stands (a write is committed unless its transaction rolls back), so do not ' +
      'retry it blindly: check whether it took effect. Fix the audit log (its pool, its table) ' +
      'before more cross-tenant work.',
    { cause: err },
  )
}
