import { InvalidInputError } from '../../errors/index.js'
import { groupBy, inTransaction, type Queryable, selectRows } from '../queryable.js'
import { quoteIdent } from '../quote.js'
import type * as M from './model.js'
import * as Q from './queries.js'

const ACTIONS: Record<string, M.ForeignKeyAction> = {
  a: 'NO ACTION',
  r: 'RESTRICT',
  c: 'CASCADE',
  n: 'SET NULL',
  d: 'SET DEFAULT',
}

/**
 * Reads one schema from the live catalog into a {@link M.TemplateSchema}: tables
 * (plain, partitioned, partitions), columns with types, defaults, identity and
 * generated expressions, keys of any shape, unique / check / exclusion / foreign
 * key constraints, indexes, the enums and domains the columns use, and sequences.
 * Runs in one read-only transaction with the schema first on the `search_path`.
 * Throws `InvalidInputError` when the schema does not exist or has no tables.
 *
 * @example
 * ```ts
 * const template = await introspectTemplate(pool, 'tenant_1')
 * template.tables.find((t) => t.name === 'books')?.primaryKey?.columns // ['id']
 * ```
 */
export async function introspectTemplate(db: Queryable, schema: string): Promise<M.TemplateSchema> {
  quoteIdent(schema)
  return inTransaction(db, async (tx) => {
    await tx.query('set transaction read only')
    const exists = await tx.query(Q.SCHEMA_EXISTS, [schema])
    if (exists.rows.length === 0) {
      throw new InvalidInputError(
        `The template schema ${JSON.stringify(schema)} does not exist. Pass the schema of one ` +
          'legacy tenant as `fromSchema` (list schemas with `\\dn` in psql).',
      )
    }
    return readSchemaInTransaction(tx, schema)
  })
}

/**
 * Like {@link introspectTemplate} but on a connection that is already in a
 * transaction (sets the `search_path` for the rest of it); `tables` limits the
 * tables read.
 *
 * @example
 * ```ts
 * await inTransaction(pool, (tx) => readSchemaInTransaction(tx, 'public', ['books']))
 * ```
 */
export async function readSchemaInTransaction(
  tx: Queryable,
  schema: string,
  only?: readonly string[],
): Promise<M.TemplateSchema> {
  await tx.query("select set_config('search_path', $1, true)", [
    `${quoteIdent(schema)}, pg_catalog`,
  ])
  const notes: string[] = []
  const tableRows = await selectRows<Q.TemplateTableRow>(tx, Q.TABLES, [schema, only ?? null])
  const oids = tableRows.map((t) => t.oid)
  // One connection runs one query at a time: read in sequence.
  const columns = await selectRows<Q.TemplateColumnRow>(tx, Q.COLUMNS, [oids])
  const constraints = await selectRows<Q.TemplateConstraintRow>(tx, Q.CONSTRAINTS, [oids])
  const indexes = await selectRows<Q.TemplateIndexRow>(tx, Q.INDEXES, [oids])
  const types = await selectRows<Q.TemplateTypeRow>(tx, Q.TYPES, [schema])
  const sequences = await selectRows<Q.TemplateSequenceRow>(tx, Q.SEQUENCES, [schema])
  const extensions = await selectRows<Q.ExtensionsRow>(tx, Q.EXTENSIONS)
  const byTable = <T extends { table_oid: string }>(rows: readonly T[]) =>
    groupBy(rows, (r) => r.table_oid)
  const columnsOf = byTable(columns)
  const constraintsOf = byTable(constraints)
  const indexesOf = byTable(indexes)

  const identityOptions = new Map(
    sequences
      .filter((s) => s.dep === 'i' && s.owner_table)
      .map((s) => [`${s.owner_table}\u0000${s.owner_column}`, identitySequenceOptions(s)]),
  )
  const tables: M.TableDef[] = tableRows.map((t) => {
    if (t.inherits) {
      notes.push(
        `Table ${JSON.stringify(t.name)} inherits from another table (table inheritance); ` +
          'the target table is a plain table with all of its columns.',
      )
    }
    const cons = constraintsOf.get(t.oid) ?? []
    const primary = cons.find((c) => c.type === 'p')
    return {
      name: t.name,
      partitionKey: t.partition_key ?? undefined,
      partitionOf: t.parent ? { parent: t.parent, bound: t.bound ?? '' } : undefined,
      columns: (columnsOf.get(t.oid) ?? [])
        .filter((c) => !t.parent || c.local)
        .map((c) => toColumn(c, identityOptions.get(`${t.name}\u0000${c.name}`))),
      primaryKey: primary ? toKey(primary) : undefined,
      uniques: cons.filter((c) => c.type === 'u').map(toKey),
      checks: cons.filter((c) => c.type === 'c').map(toCheck),
      exclusions: cons.filter((c) => c.type === 'x').map(toExclusion),
      foreignKeys: cons.filter((c) => c.type === 'f').map(toForeignKey),
      indexes: (indexesOf.get(t.oid) ?? []).map(toIndex),
    }
  })
  const used = usedTypes(columns, types, notes)
  return {
    schema,
    tables,
    enums: types.filter((t) => t.kind === 'e' && used.has(t.oid)).map(toEnum),
    domains: sortDomains(
      types.filter((t) => t.kind === 'd' && used.has(t.oid)),
      types,
    ),
    compositeTypes: sortCompositeTypes(
      types.filter((t) => (t.kind === 'c' || t.kind === 'r') && t.definition && used.has(t.oid)),
      types,
    ),
    sequences: sequences.filter((s) => s.dep !== 'i').map(toSequence),
    extensions: {
      btreeGin: !!extensions?.[0]?.btree_gin,
      btreeGist: !!extensions?.[0]?.btree_gist,
    },
    notes,
  }
}

/** The largest value of each integer type an identity column may have. */
const TYPE_MAX: Readonly<Record<string, bigint>> = {
  smallint: 32767n,
  integer: 2147483647n,
  bigint: 9223372036854775807n,
}

/**
 * The options of an identity column's sequence that differ from what a plain
 * `GENERATED ... AS IDENTITY` gives (so a default one renders as before), or undefined.
 */
function identitySequenceOptions(s: Q.TemplateSequenceRow): string | undefined {
  const top = TYPE_MAX[s.data_type] ?? TYPE_MAX.bigint!
  const up = BigInt(s.increment) > 0n
  const [min, max] = up ? [1n, top] : [-top - 1n, -1n]
  const options: string[] = []
  if (s.increment !== '1') options.push(`INCREMENT BY ${s.increment}`)
  if (BigInt(s.min) !== min) options.push(`MINVALUE ${s.min}`)
  if (BigInt(s.max) !== max) options.push(`MAXVALUE ${s.max}`)
  if (BigInt(s.start) !== (up ? BigInt(s.min) : BigInt(s.max)))
    options.push(`START WITH ${s.start}`)
  if (s.cache !== '1') options.push(`CACHE ${s.cache}`)
  if (s.cycle) options.push('CYCLE')
  return options.length > 0 ? options.join(' ') : undefined
}

function toColumn(c: Q.TemplateColumnRow, identityOptions?: string): M.ColumnDef {
  const identity = c.identity === 'a' ? 'ALWAYS' : c.identity === 'd' ? 'BY DEFAULT' : undefined
  const generated = c.generated === 's' ? (c.expr ?? undefined) : undefined
  return {
    name: c.name,
    type: c.type,
    notNull: c.not_null,
    default: identity || generated ? undefined : (c.expr ?? undefined),
    identity,
    ...(identity && identityOptions ? { identityOptions } : {}),
    generated,
    collation: c.collation ?? undefined,
  }
}

function toKey(c: Q.TemplateConstraintRow): M.KeyDef {
  return {
    name: c.name,
    columns: c.columns,
    include: c.include,
    nullsNotDistinct: c.nulls_not_distinct,
    deferrable: c.deferrable,
    initiallyDeferred: c.deferred,
  }
}

function toCheck(c: Q.TemplateConstraintRow): M.CheckDef {
  return { name: c.name, definition: c.definition }
}

function toExclusion(c: Q.TemplateConstraintRow): M.ExclusionDef {
  const prefix = `EXCLUDE USING ${c.q_method} (`
  const definition = c.definition
  if (!definition.startsWith(prefix)) {
    throw new InvalidInputError(
      `Cannot read the exclusion constraint ${JSON.stringify(c.name)}: ${definition}. ` +
        'Drop it from the template or create it on the target by hand.',
    )
  }
  return { name: c.name, method: c.method ?? '', tail: definition.slice(prefix.length) }
}

function toForeignKey(c: Q.TemplateConstraintRow): M.ForeignKeyDef {
  return {
    name: c.name,
    columns: c.columns,
    refSchema: c.ref_schema ?? '',
    refTable: c.ref_table ?? '',
    refColumns: c.ref_columns,
    onUpdate: ACTIONS[c.on_update] ?? 'NO ACTION',
    onDelete: ACTIONS[c.on_delete] ?? 'NO ACTION',
    onDeleteColumns: c.delete_columns,
    match: c.match === 'f' ? 'FULL' : 'SIMPLE',
    deferrable: c.deferrable,
    initiallyDeferred: c.deferred,
  }
}

function toIndex(i: Q.TemplateIndexRow): M.IndexDef {
  // pg_get_indexdef: CREATE [UNIQUE ]INDEX <name> ON [ONLY ]<schema>.<table> USING <am> (<tail>
  const head = `CREATE ${i.unique ? 'UNIQUE ' : ''}INDEX ${i.q_name} ON `
  const using = ` USING ${i.q_method} (`
  const definition = i.definition
  const table = `${i.q_schema}.${i.q_table}`
  const prefix = [`${head}${table}${using}`, `${head}ONLY ${table}${using}`].find((p) =>
    definition.startsWith(p),
  )
  if (prefix === undefined) {
    throw new InvalidInputError(
      `Cannot read the index ${JSON.stringify(i.name)}: ${definition}. ` +
        'Drop it from the template or create it on the target by hand.',
    )
  }
  return {
    name: i.name,
    unique: i.unique,
    method: i.method,
    keys: i.keys,
    tail: definition.slice(prefix.length),
  }
}

function toEnum(t: Q.TemplateTypeRow): M.EnumDef {
  return { name: t.name, labels: t.labels }
}

function toSequence(s: Q.TemplateSequenceRow): M.SequenceDef {
  return {
    name: s.name,
    dataType: s.data_type,
    start: s.start,
    increment: s.increment,
    min: s.min,
    max: s.max,
    cache: s.cache,
    cycle: s.cycle,
    ownedBy:
      s.dep === 'a' && s.owner_table
        ? { table: s.owner_table, column: s.owner_column ?? '' }
        : undefined,
  }
}

/** The template-schema types the columns use, directly, as arrays, or under domains. */
function usedTypes(
  columns: readonly Q.TemplateColumnRow[],
  types: readonly Q.TemplateTypeRow[],
  notes: string[],
): Set<string> {
  const byOid = new Map(types.map((t) => [t.oid, t]))
  const used = new Set<string>()
  const visit = (oid: string, user: string) => {
    const t = byOid.get(oid)
    if (!t || used.has(oid)) return
    if (t.elem_oid !== '0' && t.kind !== 'd') return visit(t.elem_oid, user)
    // A multirange comes with its range.
    if (t.kind === 'm') return visit(t.depends_on[0] ?? '', user)
    used.add(oid)
    if (t.kind === 'd') visit(t.base_oid, user)
    else if ((t.kind === 'c' || t.kind === 'r') && t.definition) {
      for (const d of t.depends_on) visit(d, user)
    } else if (t.kind !== 'e') {
      notes.push(
        `${user} uses the type ${JSON.stringify(t.name)} of the template schema, which is neither ` +
          'an enum, a domain, a composite or a plain range type: create it in the target schema before applying.',
      )
    }
  }
  for (const c of columns) visit(c.type_oid, `Column ${JSON.stringify(c.name)}`)
  return used
}

/** Composite and range types, each after the ones its attributes or subtype use. */
function sortCompositeTypes(
  rows: readonly Q.TemplateTypeRow[],
  all: readonly Q.TemplateTypeRow[],
): M.CompositeTypeDef[] {
  const byOid = new Map(rows.map((r) => [r.oid, r]))
  const usesOf = templateTypesUsed(all)
  const out: M.CompositeTypeDef[] = []
  const done = new Set<string>()
  const visit = (r: Q.TemplateTypeRow) => {
    if (done.has(r.oid)) return
    done.add(r.oid)
    const uses = usesOf(r.depends_on)
    for (const u of uses) {
      const dep = byOid.get(u.oid)
      if (dep) visit(dep)
    }
    out.push({ name: r.name, definition: r.definition ?? '', uses: uses.map((u) => u.name) })
  }
  for (const r of rows) visit(r)
  return out
}

/**
 * The domains, composite and range types of the template among the types `oids` (an
 * array type stands for its element type, a multirange for its range): what a type over
 * or made of them needs created first.
 */
function templateTypesUsed(
  all: readonly Q.TemplateTypeRow[],
): (oids: readonly string[]) => Q.TemplateTypeRow[] {
  const byOid = new Map(all.map((t) => [t.oid, t]))
  const elementOf = new Map(
    all.filter((t) => t.elem_oid !== '0' && t.kind !== 'd').map((t) => [t.oid, t.elem_oid]),
  )
  // A multirange stands for its range, which makes it.
  const resolve = (o: string) => {
    const t = byOid.get(elementOf.get(o) ?? o)
    return t?.kind === 'm' ? byOid.get(t.depends_on[0] ?? '') : t
  }
  return (oids) =>
    oids
      .map(resolve)
      .filter((t): t is Q.TemplateTypeRow => t !== undefined && ['d', 'c', 'r'].includes(t.kind))
}

/** Domains over other domains come after them. */
function sortDomains(
  rows: readonly Q.TemplateTypeRow[],
  all: readonly Q.TemplateTypeRow[],
): M.DomainDef[] {
  const byOid = new Map(rows.map((r) => [r.oid, r]))
  const usesOf = templateTypesUsed(all)
  const out: M.DomainDef[] = []
  const done = new Set<string>()
  const visit = (r: Q.TemplateTypeRow) => {
    if (done.has(r.oid)) return
    done.add(r.oid)
    const uses = usesOf([r.base_oid])
    for (const u of uses) {
      const base = byOid.get(u.oid)
      if (base) visit(base)
    }
    out.push({
      name: r.name,
      baseType: r.base_type ?? '',
      notNull: r.not_null,
      default: r.default ?? undefined,
      collation: r.collation ?? undefined,
      checks: r.checks.map(([name, definition]) => ({ name, definition })),
      uses: uses.map((u) => u.name),
    })
  }
  for (const r of rows) visit(r)
  return out
}
