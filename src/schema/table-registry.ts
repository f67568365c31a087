import { ConfigError } from '../errors/index.js'
import { DEFAULTS } from '../sql/defaults.js'
import { quoteIdent } from '../sql/quote.js'

/**
 * A tenant-aware table as the application declares it: a name (`'accounts'`,
 * or `'app.accounts'` with a schema), or an object when the schema or the tenant
 * column need saying apart.
 */
export type TableInput = string | TenantTableSpec

/**
 * The object form of a {@link TableInput}.
 */
export interface TenantTableSpec {
  /** The table name, exactly as in the database (no quoting). */
  readonly name: string
  /** The schema; leave it out to match the table in any schema. */
  readonly schema?: string | undefined
  /** The tenant column of this table, when it differs from the tenancy's default. */
  readonly tenantColumn?: string | undefined
}

/**
 * A tenant-aware table after validation: every field filled in.
 *
 * @example
 * ```ts
 * registry.lookup('accounts') // { name: 'accounts', schema: undefined, tenantColumn: 'tenant_id', qualifiedName: 'accounts' }
 * ```
 */
export interface TenantTable {
  readonly name: string
  readonly schema: string | undefined
  readonly tenantColumn: string
  /** `schema.name`, or `name` when no schema was given. */
  readonly qualifiedName: string
}

/**
 * The set of tenant-aware tables and their tenant columns. Tables that are not
 * listed are shared tables and are never filtered.
 *
 * A reference matches an entry when the names are equal and either side has no
 * schema or both schemas are equal: a bare `accounts` in a query matches
 * `app.accounts`, because the search path may resolve it there (fail closed).
 *
 * @example
 * ```ts
 * const registry = TableRegistry.from(['accounts', 'app.transactions'])
 * registry.lookup('transactions')?.schema // 'app'
 * registry.lookup('accounts', 'public')?.tenantColumn // 'tenant_id'
 * registry.find('app.transactions') !== undefined // true
 * registry.lookup('currencies') // undefined: a shared table
 * ```
 */
export class TableRegistry {
  readonly #byName: ReadonlyMap<string, readonly TenantTable[]>
  /** Every tenant-aware table, in declaration order. */
  readonly tables: readonly TenantTable[]
  /** The tenant column used when a table does not name its own. */
  readonly tenantColumn: string

  private constructor(tables: readonly TenantTable[], tenantColumn: string) {
    this.tables = Object.freeze([...tables])
    this.tenantColumn = tenantColumn
    const byName = new Map<string, TenantTable[]>()
    for (const table of tables) {
      const list = byName.get(table.name) ?? []
      list.push(table)
      byName.set(table.name, list)
    }
    this.#byName = byName
    Object.freeze(this)
  }

  /**
   * Builds a registry from table names or specs. Throws `ConfigError` for an
   * empty list, a bad name, or one table declared with two tenant columns.
   *
   * @example
   * ```ts
   * TableRegistry.from(['accounts'], { tenantColumn: 'org_id' })
   * ```
   */
  static from(
    tables: readonly TableInput[] | TableRegistry,
    options: { tenantColumn?: string } = {},
  ): TableRegistry {
    if (tables instanceof TableRegistry) return tables
    const tenantColumn = options.tenantColumn ?? DEFAULTS.tenantColumn
    checkName(tenantColumn, 'tenantColumn')
    if (!Array.isArray(tables) || tables.length === 0) {
      throw new ConfigError(
        'tables must list at least one tenant-aware table, e.g. tables: ["accounts", "transactions"]; ' +
          'tables not listed are treated as shared and never filtered.',
      )
    }
    const seen = new Map<string, TenantTable>()
    for (const input of tables) {
      const table = normalize(input, tenantColumn)
      const before = seen.get(table.qualifiedName)
      if (before && before.tenantColumn !== table.tenantColumn) {
        throw new ConfigError(
          `Table ${table.qualifiedName} is listed twice with different tenant columns ` +
            `(${before.tenantColumn}, ${table.tenantColumn}); list it once.`,
        )
      }
      seen.set(table.qualifiedName, table)
    }
    const list = [...seen.values()]
    for (const table of list) {
      const clash = list.find((t) => t.name === table.name && t.tenantColumn !== table.tenantColumn)
      if (clash && (clash.schema === undefined || table.schema === undefined)) {
        throw new ConfigError(
          `Tables ${table.qualifiedName} and ${clash.qualifiedName} share a name but have different ` +
            'tenant columns, so an unqualified reference is ambiguous; give both a schema.',
        )
      }
    }
    return new TableRegistry(list, tenantColumn)
  }

  /**
   * The entry a table reference names, or `undefined` for a shared table.
   *
   * @example
   * ```ts
   * registry.lookup('accounts', 'public')
   * ```
   */
  lookup(name: string, schema?: string): TenantTable | undefined {
    const list = this.#byName.get(name)
    if (list === undefined) return undefined
    if (schema === undefined) return list[0]
    for (const table of list) {
      if (table.schema === undefined || table.schema === schema) return table
    }
    return undefined
  }

  /**
   * Looks a table up by its written name, `table` or `schema.table`.
   *
   * @example
   * ```ts
   * registry.find('app.accounts')?.tenantColumn // 'tenant_id'
   * ```
   */
  find(qualifiedName: string): TenantTable | undefined {
    const dot = qualifiedName.indexOf('.')
    return dot === -1
      ? this.lookup(qualifiedName)
      : this.lookup(qualifiedName.slice(dot + 1), qualifiedName.slice(0, dot))
  }

  /**
   * Whether `qualifiedName` (`table` or `schema.table`) is tenant-aware.
   *
   * @example
   * ```ts
   * registry.has('currencies') // false
   * ```
   */
  has(qualifiedName: string): boolean {
    return this.find(qualifiedName) !== undefined
  }
}

function normalize(input: TableInput, defaultColumn: string): TenantTable {
  let spec: TenantTableSpec
  if (typeof input === 'string') {
    const parts = input.split('.')
    if (parts.length > 2) {
      throw new ConfigError(
        `Table name ${JSON.stringify(input)} has more than one dot; write "schema.table", ` +
          'or use { schema, name } for names that contain dots.',
      )
    }
    spec = parts.length === 2 ? { schema: parts[0], name: parts[1]! } : { name: input }
  } else if (input !== null && typeof input === 'object') {
    spec = input
  } else {
    throw new ConfigError(
      `Each entry of tables must be a table name or { name, schema?, tenantColumn? }, got ${typeof input}.`,
    )
  }
  checkName(spec.name, 'table name')
  if (spec.schema !== undefined) checkName(spec.schema, 'schema name')
  const tenantColumn = spec.tenantColumn ?? defaultColumn
  checkName(tenantColumn, 'tenantColumn')
  const qualifiedName = spec.schema === undefined ? spec.name : `${spec.schema}.${spec.name}`
  return Object.freeze({ name: spec.name, schema: spec.schema, tenantColumn, qualifiedName })
}

function checkName(name: unknown, what: string): asserts name is string {
  try {
    quoteIdent(name as string)
  } catch (err) {
    throw new ConfigError(`Invalid ${what} ${JSON.stringify(name)}: ${(err as Error).message}`, {
      cause: err,
    })
  }
}
