import {
  type DeleteQueryNode,
  type FromNode,
  type InsertQueryNode,
  type JoinNode,
  ListNode,
  type MergeQueryNode,
  type OnConflictNode,
  OnNode,
  type OperationNode,
  OperationNodeTransformer,
  type QueryId,
  type RootOperationNode,
  type SelectQueryNode,
  type UpdateQueryNode,
  UsingNode,
  ValueNode,
  type WithNode,
} from 'kysely'
import { UnsupportedQueryError } from '../errors/index.js'
import type { TableRegistry } from '../schema/table-registry.js'
import type { TenantIdType } from '../tenants/index.js'
import { stampInsert } from './insert-stamp.js'
import { assertNoTenantAssignment, tenantTablesIn } from './node-scan.js'
import { metaOf } from './query-meta.js'
import {
  andAll,
  isOpaqueRaw,
  restrictedTable,
  type TenantTableRef,
  tenantEquals,
  tenantRefOf,
  whereWith,
} from './tenant-filter.js'

/** Nodes that are or hold a query: the only ones the transformer must rebuild. */
const QUERY_KINDS = new Set([
  'SelectQueryNode',
  'InsertQueryNode',
  'UpdateQueryNode',
  'DeleteQueryNode',
  'MergeQueryNode',
])
/** Nodes that can never hold a query, so the walk does not look inside. */
const LEAF_KINDS = new Set([
  'IdentifierNode',
  'SchemableIdentifierNode',
  'TableNode',
  'ColumnNode',
  'ReferenceNode',
  'ValueNode',
  'PrimitiveValueListNode',
  'OperatorNode',
  'SelectAllNode',
  'DefaultInsertValueNode',
  'DataTypeNode',
])

/**
 * Whether some join is a RIGHT, FULL or other kind that is neither in ON_JOINS
 * nor in PRODUCT_JOINS: then tenant-aware tables are wrapped in a filtered
 * subquery instead of filtered in WHERE / ON (see `#scopeFromAndJoins`).
 */
function hasOuterJoin(joins: readonly JoinNode[] | undefined): boolean {
  if (joins === undefined) return false
  for (let i = 0; i < joins.length; i++) {
    const type = joins[i]!.joinType
    if (!ON_JOINS.has(type) && !PRODUCT_JOINS.has(type)) return true
  }
  return false
}

/** How the walk treats a node kind: absent = look inside; LEAF = never holds a query; QUERY = is one. */
const LEAF = 1
const QUERY = 2
const KIND_CLASS = new Map<string, number>([
  ...[...LEAF_KINDS].map((kind) => [kind, LEAF] as const),
  ...[...QUERY_KINDS].map((kind) => [kind, QUERY] as const),
])

/**
 * Whether any node under `node` is a query (a generic walk, so new Kysely node
 * kinds are covered). One Map lookup per node; runs once per query level, so it
 * is on every compile's path.
 */
function holdsQuery(node: OperationNode): boolean {
  const record = node as unknown as Record<string, { kind?: string } | undefined>
  for (const key in record) {
    const value = record[key]
    if (typeof value !== 'object' || value === null) continue
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) {
        const item = value[i]
        if (typeof item !== 'object' || item === null) continue
        const kind = item.kind
        if (kind === undefined) continue
        const cls = KIND_CLASS.get(kind)
        if (cls === QUERY || (cls === undefined && holdsQuery(item))) return true
      }
    } else {
      const kind = value.kind
      if (kind === undefined) continue
      const cls = KIND_CLASS.get(kind)
      if (cls === QUERY || (cls === undefined && holdsQuery(value as OperationNode))) return true
    }
  }
  return false
}

/** Root nodes that are DDL: refused when they name a tenant-aware table (see `scope`). */
const DDL_KINDS = new Set([
  'CreateTableNode',
  'CreateViewNode',
  'CreateIndexNode',
  'AlterTableNode',
  'DropTableNode',
  'DropViewNode',
  'DropIndexNode',
  'RefreshMaterializedViewNode',
  'CreateTypeNode',
  'DropTypeNode',
  'CreateSchemaNode',
  'DropSchemaNode',
])

/** Never a CTE: the name lookup of a write target (PostgreSQL never reads one as a CTE). */
const NO_CTE = (): boolean => false

/** Joins whose ON clause may carry the filter (the joined table is the null-supplying or inner side). */
const ON_JOINS = new Set(['InnerJoin', 'LeftJoin', 'LateralInnerJoin', 'LateralLeftJoin'])
/** Joins with no ON whose rows are a plain product, so a WHERE filter is exact. */
const PRODUCT_JOINS = new Set(['CrossJoin', 'LateralCrossJoin', 'CrossApply'])

/**
 * The `OperationNodeTransformer` behind {@link TenantPlugin}: adds
 * `"<alias or table>"."tenant_id" = $n` for every reference to a tenant-aware
 * table at every query level, stamps inserts, and refuses what it cannot scope.
 * Like Kysely's `WithSchemaTransformer`, it keeps its bookkeeping (CTE names in
 * scope) per query node, so subqueries and CTE bodies get their own.
 *
 * One instance serves one plugin; `scope()` is synchronous, so the per-call
 * state never interleaves.
 *
 * @internal
 */
export class TenantTransformer extends OperationNodeTransformer {
  readonly #registry: TableRegistry
  readonly #idType: TenantIdType
  #tenant = ''
  /** The tenant's `ValueNode`, shared by every filter of a query (and reused while the tenant is the same). */
  #value: OperationNode = ValueNode.create('')
  readonly #ctes: Set<string>[] = []
  readonly #strictRaw: boolean

  constructor(
    registry: TableRegistry,
    idType: TenantIdType,
    options: { strictRaw?: boolean } = {},
  ) {
    super()
    this.#registry = registry
    this.#idType = idType
    this.#strictRaw = options.strictRaw === true
  }

  /** Scopes `node` to `tenant` (its canonical text form). */
  scope(node: RootOperationNode, tenant: string, queryId?: QueryId): RootOperationNode {
    if (tenant !== this.#tenant) this.#value = ValueNode.create(tenant)
    this.#tenant = tenant
    this.#ctes.length = 0
    if (DDL_KINDS.has(node.kind)) return this.#checkDdl(node)
    try {
      return this.transformNode(node, queryId)
    } finally {
      this.#ctes.length = 0
    }
  }

  /**
   * Rebuilds only nodes that are or hold a query; every other subtree is handed
   * back as it is (Kysely nodes are frozen, so sharing them is safe). Rebuilding
   * a whole 3-join query would cost more than compiling it.
   */
  protected override transformNodeImpl<T extends OperationNode>(node: T, queryId?: QueryId): T {
    const cls = KIND_CLASS.get(node.kind)
    if (cls === LEAF) return node
    if (cls === undefined) {
      return holdsQuery(node) ? super.transformNodeImpl(node, queryId) : node
    }
    // Kysely runs the plugins over a builder nested in another query when it is
    // nested (`union(db.selectFrom(...))`, `where('id', 'in', db.selectFrom(...))`),
    // so the outer query meets an already scoped node: scope its original again,
    // for the tenant of the outer compile (no stale tenant, no double filter).
    const source = metaOf(node)?.origin as T | undefined
    return super.transformNodeImpl(source ?? node, queryId)
  }

  protected override transformSelectQuery(node: SelectQueryNode, queryId?: QueryId) {
    return this.#withCtes(node.with, () => {
      // No query below this one (the common case): super would only copy it.
      const out = holdsQuery(node) ? super.transformSelectQuery(node, queryId) : node
      const filters: OperationNode[] = []
      const { from, joins } = this.#scopeFromAndJoins(out.from, out.joins, filters)
      return Object.freeze({ ...out, from, joins, where: whereWith(out.where, filters) })
    })
  }

  protected override transformUpdateQuery(node: UpdateQueryNode, queryId?: QueryId) {
    return this.#withCtes(node.with, () => {
      // No query below this one (the common case): super would only copy it.
      const out = holdsQuery(node) ? super.transformUpdateQuery(node, queryId) : node
      const filters: OperationNode[] = []
      for (const ref of this.#targetsOf(out.table)) {
        assertNoTenantAssignment(out.updates, ref.entry, this.#tenant, this.#idType, 'UPDATE')
        filters.push(tenantEquals(ref, this.#value))
      }
      const { from, joins } = this.#scopeFromAndJoins(out.from, out.joins, filters)
      return Object.freeze({ ...out, from, joins, where: whereWith(out.where, filters) })
    })
  }

  protected override transformDeleteQuery(node: DeleteQueryNode, queryId?: QueryId) {
    return this.#withCtes(node.with, () => {
      // No query below this one (the common case): super would only copy it.
      const out = holdsQuery(node) ? super.transformDeleteQuery(node, queryId) : node
      const filters: OperationNode[] = []
      for (const item of out.from.froms) {
        for (const ref of this.#targetsOf(item)) filters.push(tenantEquals(ref, this.#value))
      }
      const hasOuter = hasOuterJoin(out.joins)
      const using = out.using && this.#scopeUsing(out.using, hasOuter, filters)
      const joins = out.joins && this.#scopeJoins(out.joins, hasOuter, filters)
      return Object.freeze({ ...out, using, joins, where: whereWith(out.where, filters) })
    })
  }

  protected override transformInsertQuery(node: InsertQueryNode, queryId?: QueryId) {
    return this.#withCtes(node.with, () => {
      // No query below this one (the common case): super would only copy it.
      const out = holdsQuery(node) ? super.transformInsertQuery(node, queryId) : node
      const ref = out.into && this.#targetOf(out.into)
      if (ref === undefined) return out
      const stamped = stampInsert(out, {
        entry: ref.entry,
        tenant: this.#tenant,
        idType: this.#idType,
      })
      if (!stamped.onConflict) return stamped
      return Object.freeze({ ...stamped, onConflict: this.#scopeConflict(stamped.onConflict, ref) })
    })
  }

  protected override transformMergeQuery(node: MergeQueryNode, queryId?: QueryId) {
    return this.#withCtes(node.with, () => {
      // No query below this one (the common case): super would only copy it.
      const out = holdsQuery(node) ? super.transformMergeQuery(node, queryId) : node
      const target = this.#targetOf(out.into) ?? (out.using && this.#refOf(out.using.table))
      if (target) {
        throw new UnsupportedQueryError(
          `MERGE on tenant-aware table ${target.entry.qualifiedName} is refused: the TenantPlugin does not ` +
            'scope MERGE. Use insertInto(...).onConflict(...) for upserts, or tenancy.allObjects(reason) ' +
            'for deliberate cross-tenant work.',
        )
      }
      return out
    })
  }

  /**
   * CTE scoping: a non-recursive CTE sees only the CTEs before it (so
   * `with accounts as (select * from accounts)` filters the real table in its
   * body); a recursive WITH sees all its names. The owning query pushed the
   * full set of names before calling super, so it is the top of the stack.
   */
  protected override transformWith(node: WithNode, queryId?: QueryId): WithNode {
    if (node.recursive) return super.transformWith(node, queryId)
    const all = this.#ctes.pop() ?? new Set<string>()
    const visible = new Set<string>()
    this.#ctes.push(visible)
    try {
      const expressions = node.expressions.map((cte) => {
        const transformed = this.transformNode(cte, queryId)
        visible.add(cte.name.table.table.identifier.name)
        return transformed
      })
      return Object.freeze({ ...node, expressions: Object.freeze(expressions) })
    } finally {
      this.#ctes.pop()
      this.#ctes.push(all)
    }
  }

  #withCtes<T>(withNode: WithNode | undefined, fn: () => T): T {
    if (withNode === undefined) return fn()
    this.#ctes.push(new Set(withNode.expressions.map((e) => e.name.table.table.identifier.name)))
    try {
      return fn()
    } finally {
      this.#ctes.pop()
    }
  }

  readonly #isCte = (name: string): boolean => {
    for (const set of this.#ctes) if (set.has(name)) return true
    return false
  }

  /** A tenant-aware table in a read position (FROM, JOIN, USING), where CTE names resolve first. */
  #refOf(node: OperationNode): TenantTableRef | undefined {
    this.#checkRaw(node)
    return tenantRefOf(node, this.#registry, this.#isCte)
  }

  /** A tenant-aware table as the target of INSERT / UPDATE / DELETE / MERGE: never a CTE. */
  #targetOf(node: OperationNode): TenantTableRef | undefined {
    this.#checkRaw(node)
    return tenantRefOf(node, this.#registry, NO_CTE)
  }

  /** Tenant-aware tables in a target position (a table, an aliased table, or a list of them). */
  #targetsOf(node: OperationNode | undefined): TenantTableRef[] {
    if (node === undefined) return []
    if (ListNode.is(node)) return node.items.flatMap((item) => this.#targetsOf(item))
    const ref = this.#targetOf(node)
    return ref ? [ref] : []
  }

  /** With `strictRaw`, raw SQL in a table position is refused: the plugin cannot scope it. */
  #checkRaw(node: OperationNode): void {
    if (!this.#strictRaw || !isOpaqueRaw(node)) return
    throw new UnsupportedQueryError(
      'A raw sql fragment stands where a table goes, and the TenantPlugin cannot scope it ' +
        '(strictRaw is on). Name the table with the query builder (or sql.table(name)), or run ' +
        'this under row level security with strictRaw off.',
    )
  }

  /**
   * DDL over a tenant-aware table is refused under a tenant: a view or `create
   * table ... as` would freeze the current tenant's id into an object every tenant
   * shares. Run it in a migration, or inside `withoutTenant(reason, fn)` (the
   * plugin then leaves it alone and the statement is audited).
   */
  #checkDdl(node: RootOperationNode): RootOperationNode {
    const tables = tenantTablesIn(node, this.#registry)
    if (tables.length === 0) return node
    throw new UnsupportedQueryError(
      `${node.kind.replace(/Node$/, '')} over tenant-aware table ${tables[0]!.qualifiedName} is refused ` +
        "under a tenant: a view or table built from it would hold one tenant's id for every tenant. " +
        'Run DDL in a migration, or inside withoutTenant(reason, fn), where it is left unfiltered and audited.',
    )
  }

  /**
   * FROM items and joins of one query level. With only inner/left/cross joins,
   * FROM items get a WHERE filter and joined tables an ON filter (a LEFT JOIN
   * stays a LEFT JOIN). A RIGHT or FULL join (or any other kind) makes tables
   * preserved or null-extended in ways no WHERE/ON placement gets right, so then
   * each tenant-aware table is replaced by `(select * from t where t.tenant_id = $n) as t`.
   */
  #scopeFromAndJoins(
    from: FromNode | undefined,
    joins: readonly JoinNode[] | undefined,
    filters: OperationNode[],
  ): { from: FromNode | undefined; joins: readonly JoinNode[] | undefined } {
    const hasOuter = hasOuterJoin(joins)
    let scopedFrom = from
    if (from) {
      const froms = this.#scopeList(from.froms, hasOuter, filters)
      if (froms !== from.froms) scopedFrom = Object.freeze({ ...from, froms })
    }
    return { from: scopedFrom, joins: joins && this.#scopeJoins(joins, hasOuter, filters) }
  }

  /** Scopes FROM / USING items; returns `items` itself when none had to be wrapped. */
  #scopeList(
    items: readonly OperationNode[],
    hasOuter: boolean,
    filters: OperationNode[],
  ): readonly OperationNode[] {
    // A plain loop rather than a mapping closure: this runs for every FROM of every compile.
    let out: OperationNode[] | undefined
    for (let i = 0; i < items.length; i++) {
      const item = items[i]!
      const scoped = this.#scopeListItem(item, hasOuter, filters)
      if (scoped !== item) {
        out ??= items.slice()
        out[i] = scoped
      }
    }
    return out ? Object.freeze(out) : items
  }

  #scopeUsing(using: UsingNode, hasOuter: boolean, filters: OperationNode[]): UsingNode {
    const tables = this.#scopeList(using.tables, hasOuter, filters)
    return tables === using.tables ? using : UsingNode.create(tables)
  }

  #scopeListItem(item: OperationNode, hasOuter: boolean, filters: OperationNode[]): OperationNode {
    const ref = this.#refOf(item)
    if (ref === undefined) return item
    if (hasOuter) return restrictedTable(ref, this.#value)
    filters.push(tenantEquals(ref, this.#value))
    return item
  }

  #scopeJoins(
    joins: readonly JoinNode[],
    hasOuter: boolean,
    filters: OperationNode[],
  ): readonly JoinNode[] {
    let out: JoinNode[] | undefined
    for (let i = 0; i < joins.length; i++) {
      const join = joins[i]!
      const scoped = this.#scopeJoin(join, hasOuter, filters)
      if (scoped !== join) {
        out ??= joins.slice()
        out[i] = scoped
      }
    }
    return out ? Object.freeze(out) : joins
  }

  #scopeJoin(join: JoinNode, hasOuter: boolean, filters: OperationNode[]): JoinNode {
    const ref = this.#refOf(join.table)
    if (ref === undefined) return join
    if (hasOuter) return Object.freeze({ ...join, table: restrictedTable(ref, this.#value) })
    const filter = tenantEquals(ref, this.#value)
    if (ON_JOINS.has(join.joinType)) {
      const on = join.on ? andAll(join.on.on, [filter]) : filter
      return Object.freeze({ ...join, on: OnNode.create(on) })
    }
    filters.push(filter)
    return join
  }

  /**
   * `on conflict ... do update ... where "<table>"."tenant_id" = $n`: an upsert
   * only ever updates the current tenant's row, even when the conflicting row
   * belongs to another tenant (possible only through a unique constraint that
   * does not lead with the tenant column): the plugin alone then skips the row,
   * like DO NOTHING; under row level security PostgreSQL raises 42501 instead,
   * since the existing row fails the UPDATE policy. Neither touches the row.
   */
  #scopeConflict(node: OnConflictNode, ref: TenantTableRef): OnConflictNode {
    if (node.doNothing || !node.updates) return node
    assertNoTenantAssignment(
      node.updates,
      ref.entry,
      this.#tenant,
      this.#idType,
      'INSERT ... ON CONFLICT DO UPDATE',
    )
    const target = { ...ref, alias: undefined }
    return Object.freeze({
      ...node,
      updateWhere: whereWith(node.updateWhere, [tenantEquals(target, this.#value)]),
    })
  }
}
