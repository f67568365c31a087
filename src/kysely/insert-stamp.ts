import {
  AliasNode,
  CastNode,
  ColumnNode,
  DataTypeNode,
  DefaultInsertValueNode,
  IdentifierNode,
  type InsertQueryNode,
  type OperationNode,
  PrimitiveValueListNode,
  SelectionNode,
  SelectQueryNode,
  ValueListNode,
  ValueNode,
  ValuesNode,
} from 'kysely'
import { describeValue } from '../errors/describe-value.js'
import { CrossTenantWriteError, UnsupportedQueryError } from '../errors/index.js'
import type { TenantTable } from '../schema/table-registry.js'
import { type TenantIdType, tryParseTenantId } from '../tenants/index.js'

/**
 * What the stamping needs to know about the current query.
 *
 * @internal
 */
export interface StampContext {
  readonly entry: TenantTable
  readonly tenant: string
  readonly idType: TenantIdType
}

/**
 * Stamps the current tenant on every row an INSERT writes: appends the tenant
 * column to the values (or to the select of an insert-select), checks an
 * explicit value equals the current tenant, refuses what it cannot check.
 *
 * @internal
 */
export function stampInsert(node: InsertQueryNode, ctx: StampContext): InsertQueryNode {
  const columns = node.columns ?? []
  const index = columns.findIndex((c) => c.column.name === ctx.entry.tenantColumn)
  const values = node.values
  if (values === undefined) {
    if (!node.defaultValues && columns.length > 0) return node
    return Object.freeze({
      ...node,
      defaultValues: undefined,
      columns: Object.freeze([ColumnNode.create(ctx.entry.tenantColumn)]),
      values: ValuesNode.create([PrimitiveValueListNode.create([ctx.tenant])]),
    })
  }
  const withColumn =
    index === -1 ? Object.freeze([...columns, ColumnNode.create(ctx.entry.tenantColumn)]) : columns
  if (ValuesNode.is(values)) {
    const rows = values.values.map((row) => stampRow(row, index, ctx))
    return Object.freeze({ ...node, columns: withColumn, values: ValuesNode.create(rows) })
  }
  if (SelectQueryNode.is(values)) {
    return Object.freeze({
      ...node,
      columns: withColumn,
      values: stampSelect(values, index, columns.length, ctx),
    })
  }
  throw new UnsupportedQueryError(
    `An INSERT into tenant-aware table ${ctx.entry.qualifiedName} takes its rows from a ` +
      `${values.kind} the TenantPlugin cannot inspect, so it cannot stamp ${ctx.entry.tenantColumn}. ` +
      'Use .values(...) or .expression(selectQuery); raw SQL is left to row level security.',
  )
}

function stampRow(
  row: ValueListNode | PrimitiveValueListNode,
  index: number,
  ctx: StampContext,
): ValueListNode | PrimitiveValueListNode {
  if (PrimitiveValueListNode.is(row)) {
    if (index === -1) return PrimitiveValueListNode.create([...row.values, ctx.tenant])
    checkExplicit(row.values[index], ctx)
    return row
  }
  if (ValueListNode.is(row)) {
    if (index === -1) return ValueListNode.create([...row.values, ValueNode.create(ctx.tenant)])
    const item = row.values[index]
    if (item !== undefined && ValueNode.is(item)) {
      checkExplicit(item.value, ctx)
      return row
    }
    if (item === undefined || DefaultInsertValueNode.is(item)) {
      const items = [...row.values]
      items[index] = ValueNode.create(ctx.tenant)
      return ValueListNode.create(items)
    }
    throw cannotCheck(ctx, item.kind)
  }
  throw cannotCheck(ctx, (row as OperationNode).kind)
}

/**
 * The select of an INSERT ... SELECT with the current tenant in the tenant column's place:
 * appended (column and value) when the column list leaves it out, else put in place of
 * the item at its position, which must then be that column's value: a select list as
 * long as the column list, no `*` (a raw item such as `sql\`id, 2\`` renders two values
 * and shifts the rest, so a list one short of the columns is refused too).
 */
function stampSelect(
  select: SelectQueryNode,
  index: number,
  columnCount: number,
  ctx: StampContext,
): SelectQueryNode {
  const arm = (node: SelectQueryNode): SelectQueryNode => {
    const selections = node.selections ?? []
    if (index === -1) {
      return SelectQueryNode.cloneWithSelections(node, [tenantSelection(ctx)])
    }
    if (selections.some((s) => s.selection.kind === 'SelectAllNode' || isSelectAllRef(s))) {
      throw new UnsupportedQueryError(
        `An INSERT ... SELECT into ${ctx.entry.qualifiedName} lists ${ctx.entry.tenantColumn} but selects *, ` +
          `so the TenantPlugin cannot tell which value it gets. Leave ${ctx.entry.tenantColumn} out of ` +
          'the column list (the current tenant is stamped for you) or select columns by name.',
      )
    }
    if (selections.length !== columnCount) {
      throw cannotCheck(
        ctx,
        `a select list of ${selections.length} items for ${columnCount} columns: a raw item may hold several`,
      )
    }
    const selection = selections[index]!
    const inner = AliasNode.is(selection.selection) ? selection.selection.node : selection.selection
    if (ValueNode.is(inner)) checkExplicit(inner.value, ctx)
    const replaced = [...selections]
    replaced[index] = tenantSelection(ctx)
    return Object.freeze({ ...node, selections: Object.freeze(replaced) })
  }
  const main = arm(select)
  if (!main.setOperations) return main
  return Object.freeze({
    ...main,
    setOperations: Object.freeze(
      main.setOperations.map((op) => {
        if (!SelectQueryNode.is(op.expression)) throw cannotCheck(ctx, op.expression.kind)
        return Object.freeze({ ...op, expression: arm(op.expression) })
      }),
    ),
  })
}

function isSelectAllRef(selection: SelectionNode): boolean {
  const s = selection.selection
  return (
    s.kind === 'ReferenceNode' && (s as { column: OperationNode }).column.kind === 'SelectAllNode'
  )
}

/** `cast($n as <type>) as "<tenant column>"`: typed, since a bare select-list parameter is text. */
function tenantSelection(ctx: StampContext): SelectionNode {
  return SelectionNode.create(
    AliasNode.create(
      CastNode.create(ValueNode.create(ctx.tenant), DataTypeNode.create(ctx.idType)),
      IdentifierNode.create(ctx.entry.tenantColumn),
    ),
  )
}

function checkExplicit(value: unknown, ctx: StampContext): void {
  if (tryParseTenantId(ctx.idType, value) === ctx.tenant) return
  throw new CrossTenantWriteError(
    `INSERT into ${ctx.entry.qualifiedName} names ${ctx.entry.tenantColumn} ${describeValue(value)}, ` +
      `but the current tenant is ${JSON.stringify(ctx.tenant)}.`,
  )
}

function cannotCheck(ctx: StampContext, what: string): UnsupportedQueryError {
  return new UnsupportedQueryError(
    `An INSERT into ${ctx.entry.qualifiedName} gives ${ctx.entry.tenantColumn} a value the TenantPlugin ` +
      `cannot check (${what}). Leave ${ctx.entry.tenantColumn} out (the current tenant is stamped for you) ` +
      'or pass the current tenant id as a plain value.',
  )
}
