import { MigrationError } from '../errors/index.js'

/** The fields of a PostgreSQL error that name what a row broke (node-postgres `DatabaseError`). */
interface ConstraintError {
  readonly code?: string
  readonly schema?: string
  readonly table?: string
  readonly column?: string
  readonly constraint?: string
  readonly detail?: string
}

/**
 * The error a tenant's copy failed with when a source row breaks a constraint of the target
 * that the tenant schema does not have (a NOT NULL, CHECK, UNIQUE or exclusion constraint the
 * template has and this tenant dropped), said plainly: the tenant schema, the table, the
 * constraint, the offending key, and the fix. Any other error as it is.
 *
 * @example
 * ```ts
 * constraintFailure(err, 'tenant_2', 'public', ['client']).message
 * // 'Tenant schema "tenant_2": a row of client has NULL in name, which public.client has NOT NULL. ...'
 * ```
 */
export function constraintFailure(
  err: unknown,
  tenantSchema: string,
  targetSchema: string,
  tables: readonly string[],
): unknown {
  const e = (err ?? {}) as ConstraintError
  // Only a row copied into one of the tenant's target tables (not the ledger, not `tenants`).
  if (!e.table || e.schema !== targetSchema || !tables.includes(e.table)) return err
  const table = `${targetSchema}.${e.table}`
  const detail = e.detail ? ` (${e.detail})` : ''
  let what: string
  switch (e.code) {
    case '23502':
      what = `a row of ${e.table} has NULL in ${e.column ?? 'a column'}, which ${table} has NOT NULL`
      break
    case '23514':
      what = `a row of ${e.table} breaks CHECK constraint ${e.constraint ?? ''} of ${table}${detail}`
      break
    case '23505':
      what = `rows of ${e.table} repeat a key of unique constraint ${e.constraint ?? ''} of ${table}${detail}`
      break
    case '23P01':
      what = `rows of ${e.table} conflict under exclusion constraint ${e.constraint ?? ''} of ${table}${detail}`
      break
    default:
      return err
  }
  return new MigrationError(
    `Tenant schema ${JSON.stringify(tenantSchema)}: ${what}; the tenant schema lacks that constraint. ` +
      'Nothing of the tenant was copied: fix those rows in the tenant schema (or relax the target), then rerun.',
    { cause: err },
  )
}
