import {
  AggregateFunctionNode,
  AliasNode,
  type ColumnUpdateNode,
  createQueryId,
  ExplainNode,
  FunctionNode,
  IdentifierNode,
  ListNode,
  type OperationNode,
  PostgresQueryCompiler,
  RawNode,
  type RootOperationNode,
  TableNode,
  UpdateQueryNode,
  ValueNode,
} from 'kysely'
import { CrossTenantWriteError, UnsupportedQueryError } from '../errors/index.js'
import type { TableRegistry, TenantTable } from '../schema/table-registry.js'
import { UNSCOPABLE_FUNCTIONS, UNWRITABLE_RELATIONS } from '../sql/unscopable-functions.js'
import { type TenantIdType, tryParseTenantId } from '../tenants/index.js'
import { columnNameOf } from './tenant-filter.js'

/**
 * Calls `visit` for every node under `node` (itself included), by a generic walk
 * over object properties, so node kinds added by later Kysely versions are seen;
 * below a node for which `descend` says false, nothing more.
 *
 * @internal
 */
export function walkNodes(
  node: OperationNode,
  visit: (node: OperationNode) => void,
  descend?: (node: OperationNode) => boolean,
): void {
  visit(node)
  // A value holds data, never nodes (an array value would be walked item by item).
  if (node.kind === 'ValueNode' || node.kind === 'PrimitiveValueListNode') return
  if (descend !== undefined && !descend(node)) return
  const record = node as unknown as Record<string, unknown>
  for (const key in record) {
    const value = record[key]
    if (typeof value !== 'object' || value === null) continue
    if (Array.isArray(value)) {
      for (const item of value) {
        if (typeof item === 'object' && item !== null && typeof item.kind === 'string') {
          walkNodes(item as OperationNode, visit, descend)
        }
      }
    } else if (typeof (value as { kind?: unknown }).kind === 'string') {
      walkNodes(value as OperationNode, visit, descend)
    }
  }
}

/**
 * The tenant-aware tables any `TableNode` under `node` names, read without CTE
 * scoping (a CTE named like a tenant table counts): for decisions that must err
 * on the side of "touches tenant data" (DDL, queries with no tenant).
 *
 * @internal
 */
export function tenantTablesIn(node: OperationNode, registry: TableRegistry): TenantTable[] {
  const found: TenantTable[] = []
  walkNodes(node, (n) => {
    if (!TableNode.is(n)) return
    const entry = registry.lookup(n.table.identifier.name, n.table.schema?.name)
    if (entry !== undefined && !found.includes(entry)) found.push(entry)
  })
  return found
}

/** Renders a node fragment as Kysely would send it, for reading raw SQL whole. */
const compiler = new PostgresQueryCompiler()

/**
 * Whether `node` may name `column` anywhere: an identifier with that name, or, when raw
 * SQL is in it, the fragment's SQL text as Kysely renders it (case-insensitive; raw text
 * is not parsed, so any mention counts). The rendered text is read whole, not fragment by
 * fragment: `"tenant${sql.raw('')}_id"` spells the column across two fragments.
 *
 * @internal
 */
export function mentionsColumn(node: OperationNode, column: string): boolean {
  const lower = column.toLowerCase()
  let found = false
  let raw = false
  walkNodes(node, (n) => {
    if (IdentifierNode.is(n) && n.name.toLowerCase() === lower) found = true
    else if (RawNode.is(n)) raw = true
  })
  if (found || !raw) return found
  const text = compiler.compileQuery(node as RootOperationNode, createQueryId()).sql.toLowerCase()
  // U&"..." identifiers can spell the column with escapes: treat them as a mention.
  return text.includes(lower) || text.includes('u&"')
}

/** Whether raw SQL is anywhere under `node`. */
function holdsRaw(node: OperationNode): boolean {
  let raw = false
  walkNodes(node, (n) => {
    if (RawNode.is(n)) raw = true
  })
  return raw
}

/**
 * Refuses a SET list (UPDATE, ON CONFLICT DO UPDATE) that assigns the tenant
 * column anything but the current tenant as a plain value, in any shape: a
 * column, a qualified reference, `sql.ref(...)`, a row-valued `(a, tenant_id)`
 * or any raw fragment that mentions the column, as the column set or in the value
 * set (raw SQL there renders in the SET list, so `sql\`7, tenant_id = 2\`` as
 * the value of another column adds an assignment of its own).
 *
 * @internal
 */
export function assertNoTenantAssignment(
  updates: readonly ColumnUpdateNode[] | undefined,
  entry: TenantTable,
  tenant: string,
  idType: TenantIdType,
  statement: string,
): void {
  if (updates === undefined) return
  const column = entry.tenantColumn
  for (const update of updates) {
    const plain = columnNameOf(update.column)
    if (plain !== column) {
      // Whatever the column set (a name or raw SQL), raw SQL in its value renders in the SET list.
      if (holdsRaw(update.value) && mentionsColumn(update.value, column)) {
        throw new CrossTenantWriteError(
          `${statement} on ${entry.qualifiedName} sets ${plain ?? 'a column'} to raw SQL that mentions ${column}: ` +
            `raw SQL in a SET list can assign ${column} too. Leave ${column} out of raw SQL there ` +
            '(a row cannot be moved to another tenant).',
        )
      }
    }
    if (plain !== undefined) {
      if (plain !== column) continue
      if (ValueNode.is(update.value) && tryParseTenantId(idType, update.value.value) === tenant) {
        continue
      }
    } else if (!mentionsColumn(update.column, column)) {
      continue
    }
    throw new CrossTenantWriteError(
      `${statement} on ${entry.qualifiedName} assigns ${column}; a row cannot be moved to another tenant.`,
    )
  }
}

/** Node kinds that hold no call at any depth: names, references, values, operators. */
const CALL_FREE = new Set([
  'IdentifierNode',
  'SchemableIdentifierNode',
  'TableNode',
  'ColumnNode',
  'ReferenceNode',
  'SelectAllNode',
  'ValueNode',
  'PrimitiveValueListNode',
  'OperatorNode',
  'DataTypeNode',
  'DefaultInsertValueNode',
])

const mayHoldCalls = (node: OperationNode) => !CALL_FREE.has(node.kind)

/** EXPLAIN's output formats in PostgreSQL. */
const EXPLAIN_FORMATS = new Set(['text', 'xml', 'json', 'yaml'])

function assertExplainFormat(node: ExplainNode): void {
  if (node.format === undefined || EXPLAIN_FORMATS.has(node.format.toLowerCase())) return
  throw new UnsupportedQueryError(
    `${JSON.stringify(node.format)} is not an EXPLAIN format (text, xml, json or yaml): Kysely writes ` +
      'the format into the SQL as given, and the TenantPlugin cannot scope SQL text there.',
  )
}

/** A function name as Kysely writes it, verbatim: one to three identifiers, plain or quoted. */
const FUNCTION_NAME =
  /^(?:[A-Za-z_][A-Za-z0-9_$]*|"(?:[^"]|"")+")(?:\.(?:[A-Za-z_][A-Za-z0-9_$]*|"(?:[^"]|"")+")){0,2}$/

/** The UPDATE target names one of {@link UNWRITABLE_RELATIONS} (any schema, alias or not). */
function assertWritableTarget(node: UpdateQueryNode): void {
  const targets = node.table && ListNode.is(node.table) ? node.table.items : [node.table]
  for (const target of targets) {
    if (target === undefined) continue
    const table = AliasNode.is(target) ? target.node : target
    if (!TableNode.is(table)) continue
    const name = table.table.identifier.name
    if (!UNWRITABLE_RELATIONS.has(name.toLowerCase())) continue
    throw new UnsupportedQueryError(
      `An UPDATE of ${name} is refused in a scoped query: its rule calls set_config(..., false), a ` +
        'session-level setting that outlives the checkout (the next request, another tenant, would ' +
        'run with it). Run it outside rowtenancy, or inside withoutTenant(reason, fn) where it is audited.',
    )
  }
}

/**
 * Refuses what Kysely writes into the SQL verbatim when it is SQL text, which the plugin
 * cannot scope: a call (`eb.fn(name)`, `eb.fn.agg(name)`) whose name is not a function
 * name, or that names one of the functions no scoped query may call
 * (`UNSCOPABLE_FUNCTIONS`); an `explain(format)` whose format is not one; and an
 * UPDATE of a relation whose writes set the session's settings (`UNWRITABLE_RELATIONS`:
 * `pg_settings`), at any depth (a data-modifying CTE too).
 *
 * @internal
 */
export function assertScopableCalls(node: OperationNode): void {
  walkNodes(
    node,
    (n) => {
      if (ExplainNode.is(n)) return assertExplainFormat(n)
      if (UpdateQueryNode.is(n)) return assertWritableTarget(n)
      if (!FunctionNode.is(n) && !AggregateFunctionNode.is(n)) return
      const name = n.func
      if (!FUNCTION_NAME.test(name)) {
        throw new UnsupportedQueryError(
          `${JSON.stringify(name)} is not a function name: a function's name goes into the SQL as written, ` +
            'and the TenantPlugin cannot scope SQL text there. Name the function alone (eb.fn("lower", [...])).',
        )
      }
      const last = name
        .slice(name.lastIndexOf('.') + 1)
        .replace(/^"|"$/g, '')
        .replaceAll('""', '"')
      if (UNSCOPABLE_FUNCTIONS.has(last.toLowerCase())) {
        throw new UnsupportedQueryError(
          `${name}() is refused in a scoped query: it ${last.toLowerCase() === 'set_config' ? 'can change the tenant binding' : 'runs SQL given as text or by name, which the TenantPlugin cannot scope'}. ` +
            'Run it outside rowtenancy, or inside withoutTenant(reason, fn) where it is audited.',
        )
      }
    },
    mayHoldCalls,
  )
}
