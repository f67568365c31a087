import { type Queryable, selectRows } from '../queryable.js'
import { TYPE_SHAPES, type TypeShapeRow } from './queries.js'

/**
 * One use of a type: its OID and the type modifier it is used with (`atttypmod`,
 * a domain's `typtypmod`; `-1` for none).
 *
 * @example
 * ```ts
 * const use: TypeUse = { oid: '1043', mod: 24 } // character varying(20)
 * ```
 */
export interface TypeUse {
  readonly oid: string
  readonly mod: number
}

/**
 * A type as the catalogs define it, by structure: kind, name, owning schema, and
 * what it is made of (array element, domain base, enum labels, composite
 * attributes, range subtype). Nested types are {@link TypeUse}s, looked up in the
 * same {@link TypeCatalog}.
 *
 * @example
 * ```ts
 * const t: TypeShape = { oid: '16390', schema: 'Acme Corp "Q4".eu', name: 'year', kind: 'd',
 *   base: { oid: '23', mod: -1 }, checks: ['CHECK (VALUE >= 1901)'], notNull: false, labels: [], attributes: [] }
 * ```
 */
export interface TypeShape {
  readonly oid: string
  readonly schema: string
  readonly name: string
  /** `pg_type.typtype`, with `A` for an array: `b` base, `e` enum, `d` domain, `c` composite, `r` range, `m` multirange. */
  readonly kind: string
  /** `format_type(oid, NULL)` as the server prints it (for messages only). */
  readonly display: string
  readonly element?: TypeUse
  readonly base?: TypeUse
  readonly subtype?: TypeUse
  readonly labels: readonly string[]
  readonly attributes: readonly { readonly name: string; readonly type: TypeUse }[]
  /** A domain's CHECK constraints, deparsed, with the domain's own schema prefix removed. */
  readonly checks: readonly string[]
  readonly notNull: boolean
}

/**
 * Every type reachable from some columns, by OID.
 *
 * @example
 * ```ts
 * const types = await describeTypes(pool, ['23', '16390'])
 * types.get('16390')?.kind // 'd'
 * ```
 */
export type TypeCatalog = ReadonlyMap<string, TypeShape>

/**
 * Reads the structure of the given types and of every type they are built from
 * (array elements, domain bases, composite attributes, range subtypes), one
 * catalog query per level of nesting. Type names are never parsed: quoting, dots, spaces, upper case
 * and non-ASCII in schema names play no part.
 *
 * @example
 * ```ts
 * const types = await describeTypes(pool, columns.map((c) => c.typeOid))
 * ```
 */
export async function describeTypes(
  db: Queryable,
  oids: readonly string[],
): Promise<Map<string, TypeShape>> {
  const out = new Map<string, TypeShape>()
  // Level by level (a domain's base, an array's element, ...): a few short queries.
  let todo = [...new Set(oids)].filter((o) => o !== '0')
  while (todo.length > 0) {
    const rows = await selectRows<TypeShapeRow>(db, TYPE_SHAPES, [todo])
    for (const r of rows) out.set(r.oid, toShape(r))
    const nested = [...out.values()].flatMap((t) => [
      ...(t.element ? [t.element.oid] : []),
      ...(t.base ? [t.base.oid] : []),
      ...(t.subtype ? [t.subtype.oid] : []),
      ...t.attributes.map((a) => a.type.oid),
    ])
    todo = [...new Set(nested)].filter((o) => !out.has(o))
  }
  return out
}

function toShape(r: TypeShapeRow): TypeShape {
  const prefix = `${r.q_schema}.`
  return {
    oid: r.oid,
    schema: r.schema,
    name: r.name,
    kind: r.kind,
    display: r.display,
    ...(r.elem ? { element: { oid: r.elem, mod: -1 } } : {}),
    ...(r.base ? { base: { oid: r.base, mod: Number(r.base_mod) } } : {}),
    ...(r.subtype ? { subtype: { oid: r.subtype, mod: -1 } } : {}),
    ...(r.multi_of ? { subtype: { oid: r.multi_of, mod: -1 } } : {}),
    labels: r.labels ?? [],
    attributes: r.attributes.map(([name, oid, mod]) => ({
      name,
      type: { oid, mod: Number(mod) },
    })),
    checks: r.checks.map((c) => c.split(prefix).join('')),
    notNull: r.not_null,
  }
}
