import { MigrationError } from '../errors/index.js'
import { quoteIdent } from '../sql/quote.js'

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
 * template has and this tenant dropped, or a unique / exclusion constraint of the target that
 * does not include the tenant column and so meets another tenant's row), said plainly: the
 * tenant schema, the table, the constraint, the offending key, and the fix. Any other error
 * as it is.
 *
 * @example
 * ```ts
 * constraintFailure(err, 'tenant_2', 'public', ['client'], 'tenant_id').message
 * // 'Tenant schema "tenant_2": a row of client has NULL in name, where public.client has NOT NULL, which the tenant ...'
 * ```
 */
export function constraintFailure(
  err: unknown,
  tenantSchema: string,
  targetSchema: string,
  tables: readonly string[],
  tenantColumn: string,
): unknown {
  const e = (err ?? {}) as ConstraintError
  // Only a row copied into one of the tenant's target tables (not the ledger, not `tenants`).
  if (!e.table || e.schema !== targetSchema || !tables.includes(e.table)) return err
  const table = `${targetSchema}.${e.table}`
  const detail = e.detail ? ` (${e.detail})` : ''
  const constraint = e.constraint ?? ''
  if (e.code === '23505' || e.code === '23P01') {
    // A key without the tenant column applies across tenants: this tenant's row meets another's.
    const cols = /^Key \((.*?)\)=/.exec(e.detail ?? '')?.[1]?.split(', ')
    if (cols && !cols.includes(tenantColumn) && !cols.includes(quoteIdent(tenantColumn))) {
      return new MigrationError(
        `Tenant schema ${JSON.stringify(tenantSchema)}: ${e.code === '23505' ? 'unique' : 'exclusion'} constraint ` +
          `${constraint} of ${table} does not include ${tenantColumn}, so it applies across tenants, and a ` +
          `row of ${e.table} meets another tenant's${detail}. Nothing of the tenant was copied: scope the ` +
          `constraint to the tenant (lead it with ${tenantColumn}; an exclusion constraint needs btree_gist, ` +
          'which schema generate --install-extensions creates), then rerun.',
        { cause: err },
      )
    }
  }
  const what: Record<string, string> = {
    '23502': `a row of ${e.table} has NULL in ${e.column ?? 'a column'}, where ${table} has NOT NULL`,
    '23514': `a row of ${e.table} breaks CHECK constraint ${constraint} of ${table}${detail}`,
    '23505': `rows of ${e.table} repeat a key of unique constraint ${constraint} of ${table}${detail}`,
    '23P01': `rows of ${e.table} conflict under exclusion constraint ${constraint} of ${table}${detail}`,
  }
  const said = e.code ? what[e.code] : undefined
  if (!said) return err
  return new MigrationError(
    `Tenant schema ${JSON.stringify(tenantSchema)}: ${said}, which the tenant schema does not enforce ` +
      '(it lacks the constraint, or has it NOT VALID over older rows). Nothing of the tenant was copied: fix ' +
      'those rows in the tenant schema (or relax the target), then rerun.',
    { cause: err },
  )
}
