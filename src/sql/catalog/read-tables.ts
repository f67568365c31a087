import { groupBy, type Queryable, readAll, selectRows } from '../queryable.js'
import type { ColumnInfo, ForeignKeyInfo, SchemaTables } from './model.js'
import {
  EXISTING_SCHEMAS,
  SUMMARY_COLUMNS,
  SUMMARY_CONSTRAINTS,
  SUMMARY_TABLES,
  SUMMARY_TRIGGERS,
  type SummaryColumnRow,
  type SummaryConstraintRow,
  type SummaryTableRow,
  type SummaryTriggerRow,
  TABLE_NAMES,
} from './queries.js'

/**
 * Reads every plain and partitioned table (partitions folded into their parent)
 * of the given schemas from the catalogs: columns, primary key, foreign keys,
 * enabled user triggers, a row estimate. Four queries however many schemas (the last
 * three at once on a pool); names are bound as parameters, so any schema name is safe.
 */
export async function introspectSchemas(
  db: Queryable,
  schemas: readonly string[],
): Promise<SchemaTables> {
  const result: SchemaTables = new Map(schemas.map((s) => [s, new Map()]))
  if (schemas.length === 0) return result
  const tables = await selectRows<SummaryTableRow>(db, SUMMARY_TABLES, [schemas])
  if (tables.length === 0) return result
  const oids = tables.map((t) => String(t.oid))
  const [columns, constraints, triggers] = await readAll(db, [
    () => selectRows<SummaryColumnRow>(db, SUMMARY_COLUMNS, [oids]),
    () => selectRows<SummaryConstraintRow>(db, SUMMARY_CONSTRAINTS, [oids]),
    () => selectRows<SummaryTriggerRow>(db, SUMMARY_TRIGGERS, [oids]),
  ])
  const byOid = <T extends { oid: string }>(rows: readonly T[]) =>
    groupBy(rows, (r) => String(r.oid))
  const cols = byOid(columns)
  const cons = byOid(constraints)
  const trigs = byOid(triggers)
  const prefixes = new Map(tables.map((t) => [String(t.oid), `${t.q_schema}.`]))
  for (const t of tables) {
    const oid = String(t.oid)
    const own = cons.get(oid) ?? []
    const pk = own.find((c) => c.type === 'p')
    result.get(t.schema)?.set(t.name, {
      schema: t.schema,
      name: t.name,
      partitioned: t.partitioned,
      columns: (cols.get(oid) ?? []).map((c) => toColumn(c, prefixes.get(oid) ?? '')),
      primaryKey: pk ? pk.columns : [],
      foreignKeys: own.filter((c) => c.type === 'f').map(toForeignKey),
      estimatedRows: Math.round(Number(t.estimated)),
      userTriggers: (trigs.get(oid) ?? []).map((r) => r.name),
    })
  }
  return result
}

function toColumn(r: SummaryColumnRow, ownPrefix: string): ColumnInfo {
  return {
    typeOid: r.type_oid,
    typeMod: Number(r.type_mod),
    ...(r.type_send ? { typeSend: r.type_send } : {}),
    // The table's own schema unqualified, so that expressions of two schemas compare.
    ...(r.generation ? { generation: r.generation.split(ownPrefix).join('') } : {}),
    name: r.name,
    type: r.type,
    notNull: r.not_null,
    hasDefault: r.has_default,
    generated: r.generated,
    identity: r.identity,
    typeKind: r.type_kind,
    ...(r.enum_labels ? { enumLabels: r.enum_labels } : {}),
  }
}

function toForeignKey(c: SummaryConstraintRow): ForeignKeyInfo {
  return {
    name: c.name,
    columns: c.columns,
    refSchema: c.ref_schema as string,
    refTable: c.ref_table as string,
    refColumns: c.ref_columns,
    deferrable: c.deferrable,
  }
}

/** The names of the schemas that exist, out of `schemas`. */
export async function existingSchemas(
  db: Queryable,
  schemas: readonly string[],
): Promise<Set<string>> {
  const rows = await selectRows<{ nspname: string }>(db, EXISTING_SCHEMAS, [schemas])
  return new Set(rows.map((r) => r.nspname))
}

/**
 * The names of the plain and partitioned tables (not partitions) found in any of
 * `schemas`: one catalog query, however many schemas.
 */
export async function tableNames(db: Queryable, schemas: readonly string[]): Promise<Set<string>> {
  if (schemas.length === 0) return new Set()
  const rows = await selectRows<{ relname: string }>(db, TABLE_NAMES, [schemas])
  return new Set(rows.map((r) => r.relname))
}
