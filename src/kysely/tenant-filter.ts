import {
  AliasNode,
  AndNode,
  BinaryOperationNode,
  ColumnNode,
  IdentifierNode,
  type OperationNode,
  OperatorNode,
  ParensNode,
  RawNode,
  ReferenceNode,
  SelectionNode,
  SelectQueryNode,
  TableNode,
  WhereNode,
} from 'kysely'
import type { TableRegistry, TenantTable } from '../schema/table-registry.js'

/**
 * A tenant-aware table as it appears in one FROM / JOIN / USING position.
 *
 * @internal
 */
export interface TenantTableRef {
  readonly entry: TenantTable
  /** The table node as written (may carry a schema). */
  readonly table: TableNode
  /** The alias, when the query gave one. */
  readonly alias: string | undefined
}

/**
 * Resolves a FROM / JOIN item to a tenant-aware table, or `undefined` for a
 * shared table, a CTE name, a derived table or anything else.
 *
 * @internal
 */
export function tenantRefOf(
  node: OperationNode,
  registry: TableRegistry,
  isCte: (name: string) => boolean,
): TenantTableRef | undefined {
  let table: OperationNode = node
  let alias: string | undefined
  if (AliasNode.is(node)) {
    table = node.node
    if (IdentifierNode.is(node.alias)) alias = node.alias.name
  }
  table = unwrapRawTable(table)
  if (!TableNode.is(table)) return undefined
  const name = table.table.identifier.name
  const schema = table.table.schema?.name
  if (schema === undefined && isCte(name)) return undefined
  const entry = registry.lookup(name, schema)
  return entry && { entry, table, alias }
}

/**
 * `sql.table('accounts')` (a raw node holding nothing but one table) as the
 * table it names; any other node as it is.
 *
 * @internal
 */
export function unwrapRawTable(node: OperationNode): OperationNode {
  if (!RawNode.is(node) || node.parameters.length !== 1) return node
  const child = node.parameters[0]!
  if (!TableNode.is(child)) return node
  return node.sqlFragments.every((f) => f.trim() === '') ? child : node
}

/**
 * Whether a FROM / JOIN / target item is raw SQL the plugin cannot read (not
 * `sql.table(...)`, which it reads as the table).
 *
 * @internal
 */
export function isOpaqueRaw(node: OperationNode): boolean {
  const inner = AliasNode.is(node) ? node.node : node
  return RawNode.is(unwrapRawTable(inner))
}

const EQUALS = OperatorNode.create('=')
const MAX_CACHED_REFS = 1000
/** Per table entry: references by alias or bare table name (they render alike), and by `schema.table`. */
const refCache = new WeakMap<
  TenantTable,
  { byName: Map<string, ReferenceNode>; bySchema: Map<string, ReferenceNode> }
>()

/**
 * `"<alias or table>"."<tenant column>"`, shared between queries: nodes are
 * frozen, so one instance can sit in many trees (fewer allocations per compile).
 */
function tenantColumnOf(ref: TenantTableRef): ReferenceNode {
  let cache = refCache.get(ref.entry)
  if (cache === undefined) {
    cache = { byName: new Map(), bySchema: new Map() }
    refCache.set(ref.entry, cache)
  }
  const schema = ref.alias === undefined ? ref.table.table.schema?.name : undefined
  const name = ref.alias ?? ref.table.table.identifier.name
  const map = schema === undefined ? cache.byName : cache.bySchema
  const key = schema === undefined ? name : `${schema}\u0000${name}`
  let node = map.get(key)
  if (node === undefined) {
    const owner =
      schema === undefined ? TableNode.create(name) : TableNode.createWithSchema(schema, name)
    node = ReferenceNode.create(ColumnNode.create(ref.entry.tenantColumn), owner)
    if (map.size >= MAX_CACHED_REFS) map.clear()
    map.set(key, node)
  }
  return node
}

/**
 * `"<alias or table>"."<tenant column>" = $n`, `value` being the tenant's `ValueNode`.
 *
 * @internal
 */
export function tenantEquals(ref: TenantTableRef, value: OperationNode): OperationNode {
  return BinaryOperationNode.create(tenantColumnOf(ref), EQUALS, value)
}

/**
 * `(select * from "<table>" where "<table>"."<tenant column>" = $n) as "<alias or table>"`:
 * the table restricted to the tenant before it is joined, for RIGHT and FULL joins.
 *
 * @internal
 */
export function restrictedTable(ref: TenantTableRef, value: OperationNode): OperationNode {
  const inner = SelectQueryNode.cloneWithSelections(SelectQueryNode.createFrom([ref.table]), [
    SelectionNode.createSelectAll(),
  ])
  const filtered = Object.freeze({
    ...inner,
    where: WhereNode.create(tenantEquals({ ...ref, alias: undefined }, value)),
  })
  return AliasNode.create(
    filtered,
    IdentifierNode.create(ref.alias ?? ref.table.table.identifier.name),
  )
}

/**
 * `existing and f1 and f2 ...`, with `existing` in parentheses when an `or`
 * inside it could otherwise capture the tenant filter.
 *
 * @internal
 */
export function andAll(
  existing: OperationNode | undefined,
  filters: OperationNode[],
): OperationNode {
  let out =
    existing === undefined ? undefined : isTight(existing) ? existing : ParensNode.create(existing)
  for (const filter of filters) out = out === undefined ? filter : AndNode.create(out, filter)
  return out!
}

/** Whether `node` renders without a top-level `or` (so `node and x` binds as meant). */
function isTight(node: OperationNode): boolean {
  switch (node.kind) {
    case 'BinaryOperationNode':
    case 'ParensNode':
    case 'UnaryOperationNode':
    case 'ReferenceNode':
    case 'ColumnNode':
    case 'ValueNode':
      return true
    case 'AndNode':
      return isTight((node as AndNode).left) && isTight((node as AndNode).right)
    default:
      return false
  }
}

/**
 * Adds filters to a WHERE node (creating it when absent).
 *
 * @internal
 */
export function whereWith(
  where: WhereNode | undefined,
  filters: OperationNode[],
): WhereNode | undefined {
  if (filters.length === 0) return where
  return WhereNode.create(andAll(where?.where, filters))
}

/**
 * The column name a SET / INSERT column node names, if it is a plain column.
 *
 * @internal
 */
export function columnNameOf(node: OperationNode): string | undefined {
  if (ColumnNode.is(node)) return node.column.name
  if (ReferenceNode.is(node) && ColumnNode.is(node.column)) return node.column.column.name
  return undefined
}
