import type {
  KyselyPlugin,
  PluginTransformQueryArgs,
  PluginTransformResultArgs,
  QueryId,
  QueryResult,
  RootOperationNode,
  UnknownRow,
} from 'kysely'
import {
  type CrossTenantScope,
  crossTenantScope,
  currentTenant,
  tryCurrentTenant,
} from '../context/index.js'
import { UnsupportedQueryError } from '../errors/index.js'
import { type TableInput, TableRegistry } from '../schema/table-registry.js'
import { DEFAULTS } from '../sql/defaults.js'
import { assertTenantIdType, parseTenantId, type TenantIdType } from '../tenants/index.js'
import { assertScopableCalls, tenantTablesIn } from './node-scan.js'
import { metaOf, type QueryBinding, SHARED, withMeta } from './query-meta.js'
import { TenantTransformer } from './tenant-transformer.js'

/** No id seen yet (not a value `canonical` can be called with). */
const NO_ID = Symbol('no tenant id')

/** What one compile of a query id was scoped to: a tenant's canonical id, a `withoutTenant` scope, or shared. */
type CompileKey = string | CrossTenantScope | typeof SHARED
/** The most compile keys kept per query id (a builder executed for that many tenants); the oldest goes first. */
const MAX_KEYS_PER_QUERY = 1024

/**
 * Options of {@link TenantPlugin}.
 */
export interface TenantPluginOptions {
  /** The tenant-aware tables (database names); any other table is shared and left alone. */
  readonly tables: readonly TableInput[] | TableRegistry
  /** The tenant column; `tenant_id` by default. */
  readonly tenantColumn?: string | undefined
  /** The type of tenant ids; `bigint` by default. */
  readonly tenantIdType?: TenantIdType | undefined
  /**
   * Refuse raw `sql` fragments where a table goes (`selectFrom(sql\`accounts\`.as('a'))`,
   * a raw join or write target) instead of leaving them unscoped. For the plugin
   * used without row level security; `sql.table(name)` is read as the table and
   * stays allowed. Raw fragments elsewhere (a raw subquery in a select list or a
   * WHERE) are never scoped: see docs/security-model.md. Default false.
   */
  readonly strictRaw?: boolean | undefined
}

/**
 * A Kysely plugin that scopes every query to the current tenant, in the shape
 * of Kysely's `WithSchemaPlugin`: a thin shell around an
 * `OperationNodeTransformer`. The tenant is read from the async context each
 * time a query is compiled (which Kysely does when it executes a builder); with
 * no tenant it throws `MissingTenantError` before anything runs. Inside
 * `withoutTenant(reason, fn)` it leaves queries unfiltered.
 *
 * Put it LAST in the plugin list (after `CamelCasePlugin`), so it sees the
 * database's own table and column names. `tenancy.kysely()` does this for you
 * and adds the execution-time check that a query compiled for one tenant is
 * never run for another.
 *
 * @example
 * ```ts
 * const db = new Kysely<DB>({
 *   dialect,
 *   plugins: [new CamelCasePlugin(), new TenantPlugin({ tables: ['accounts', 'transactions'] })],
 * })
 * await runWithTenant('7', () =>
 *   db.selectFrom('accounts as a')
 *     .leftJoin('transactions as t', 't.accountId', 'a.id')
 *     .selectAll('a')
 *     .execute(),
 * )
 * // select "a".* from "accounts" as "a"
 * //   left join "transactions" as "t" on "t"."account_id" = "a"."id" and "t"."tenant_id" = $1
 * //   where "a"."tenant_id" = $2            -- parameters: ['7', '7']
 * ```
 */
export class TenantPlugin implements KyselyPlugin {
  readonly #transformer: TenantTransformer
  readonly #idType: TenantIdType
  readonly #strictRaw: boolean
  /** Recently seen tenant ids and their canonical form (parsing is the costly part). */
  readonly #canonical = new Map<unknown, string>()
  /** The last id seen, its canonical form and binding: most queries repeat the previous tenant. */
  #lastId: unknown = NO_ID
  #lastCanonical = ''
  #lastBinding: QueryBinding | undefined
  /**
   * Per query id, what its compiles were scoped to (one key, or a set once a builder is
   * executed under several contexts), so a result can be refused when it comes back in a
   * context none of them matches: a query `.compile()`d for one tenant and handed to
   * `db.executeQuery` under another.
   */
  readonly #compiled = new WeakMap<QueryId, CompileKey | Set<CompileKey>>()
  /** The tenant-aware tables this plugin filters. */
  readonly registry: TableRegistry

  constructor(options: TenantPluginOptions) {
    const idType = options.tenantIdType ?? DEFAULTS.tenantIdType
    assertTenantIdType(idType)
    this.#idType = idType
    this.registry = TableRegistry.from(options.tables, { tenantColumn: options.tenantColumn })
    this.#strictRaw = options.strictRaw === true
    this.#transformer = new TenantTransformer(this.registry, idType, {
      strictRaw: this.#strictRaw,
    })
  }

  /**
   * Scopes one query. Called by Kysely for every compile/execution.
   *
   * @example
   * ```ts
   * plugin.transformQuery({ node, queryId }) // node with tenant filters added
   * ```
   */
  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    const scope = crossTenantScope()
    let node: RootOperationNode
    let binding: QueryBinding
    if (scope !== undefined) {
      node = args.node
      binding = { scope }
    } else {
      const id = tryCurrentTenant()
      assertScopableCalls(args.node)
      if (id === undefined) {
        // No tenant: a query that names no tenant-aware table (a login route reading
        // users) runs as written; anything else fails closed.
        // A statement that is raw SQL as a whole cannot be read: it needs a tenant.
        if (args.node.kind === 'RawNode' || tenantTablesIn(args.node, this.registry).length > 0) {
          currentTenant()
        }
        // With strictRaw, raw SQL where a table goes is refused here too (no tenant to read
        // it for): the scoping pass only looks, its result is not used.
        if (this.#strictRaw) this.#transformer.scope(args.node, '', args.queryId)
        this.#remember(args.queryId, SHARED)
        return withMeta(args.node, {
          owner: this,
          binding: SHARED,
          origin: metaOf(args.node)?.origin ?? args.node,
        })
      }
      const tenant = this.canonical(id)
      node = this.#transformer.scope(args.node, tenant, args.queryId)
      // Bindings are frozen and compared by value, so one per tenant can be shared.
      if (this.#lastBinding?.tenant !== tenant) this.#lastBinding = Object.freeze({ tenant })
      binding = this.#lastBinding
    }
    this.#remember(args.queryId, binding.scope ?? binding.tenant ?? SHARED)
    // A fresh node per compile, so the binding belongs to this compile only.
    return withMeta(node, { owner: this, binding, origin: metaOf(args.node)?.origin ?? args.node })
  }

  /**
   * Hands a result back when the context it arrives in matches one its query was
   * compiled for: the same tenant, an open `withoutTenant` scope, or any context for a
   * query that names no tenant-aware table. Otherwise it throws `UnsupportedQueryError`
   * and the rows are withheld (a query `.compile()`d for tenant 1 and passed to
   * `db.executeQuery` under tenant 2). A plugin sees a result only after the statement
   * has run, so a write compiled for another tenant is undone only inside a transaction;
   * `tenancy.kysely()` refuses such a query before it is sent.
   *
   * @example
   * ```ts
   * await plugin.transformResult({ result, queryId }) // result
   * ```
   */
  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    const compiled = this.#compiled.get(args.queryId)
    if (compiled !== undefined && crossTenantScope() === undefined) this.#checkResult(compiled)
    return args.result
  }

  #remember(queryId: QueryId, key: CompileKey): void {
    const seen = this.#compiled.get(queryId)
    if (seen === undefined || seen === key) {
      if (seen === undefined) this.#compiled.set(queryId, key)
      return
    }
    const keys = seen instanceof Set ? seen : new Set([seen])
    // Most recent last, so the key evicted past the cap is the least recently compiled.
    keys.delete(key)
    keys.add(key)
    if (keys.size > MAX_KEYS_PER_QUERY) keys.delete(keys.values().next().value as CompileKey)
    if (keys !== seen) this.#compiled.set(queryId, keys)
  }

  #checkResult(compiled: CompileKey | Set<CompileKey>): void {
    const has = (key: CompileKey) =>
      compiled instanceof Set ? compiled.has(key) : compiled === key
    if (has(SHARED)) return
    const id = tryCurrentTenant()
    const now = id === undefined ? undefined : this.canonical(id)
    if (now !== undefined && has(now)) return
    throw new UnsupportedQueryError(
      `This query was compiled for another context than the one it is executed in (${now === undefined ? 'no tenant' : `tenant ${JSON.stringify(now)}`}): ` +
        'a compiled query is not reused across tenants, so its result is withheld. Execute the query ' +
        'builder itself, which compiles for the current tenant, or compile it again here.',
    )
  }

  /**
   * What the compiled query whose root node is `node` was scoped to, or
   * `undefined` when this plugin did not produce it.
   *
   * @internal
   */
  bindingOf(node: RootOperationNode): QueryBinding | undefined {
    const meta = metaOf(node)
    return meta?.owner === this ? meta.binding : undefined
  }

  /**
   * The canonical text form of a tenant id under this plugin's id type.
   *
   * @internal
   */
  canonical(id: unknown): string {
    if (id === this.#lastId) return this.#lastCanonical
    let canonical = this.#canonical.get(id)
    if (canonical === undefined) {
      canonical = parseTenantId(this.#idType, id)
      if (this.#canonical.size >= 1024) this.#canonical.clear()
      this.#canonical.set(id, canonical)
    }
    this.#lastId = id
    this.#lastCanonical = canonical
    return canonical
  }
}
