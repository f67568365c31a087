import type { TypeCatalog, TypeShape, TypeUse } from '../sql/catalog/index.js'

/**
 * The two schemas whose own types correspond: a type of `source` (a tenant
 * schema) matches the type of the same name and structure in `target`.
 */
export interface SchemaMapping {
  readonly source: string
  readonly target: string
}

const INT_RANK: Record<string, number> = { int2: 1, int4: 2, int8: 3 }
const TEXTUAL = new Set(['text', 'varchar', 'bpchar'])
/** Types whose modifier only bounds values (length, precision of a time): a larger bound holds every value. */
const BOUNDED = new Set([
  'varchar',
  'bpchar',
  'bit',
  'varbit',
  'timestamp',
  'timestamptz',
  'time',
  'timetz',
  'interval',
])

/**
 * Why a source type cannot hold its values in the target type (`undefined` when
 * every value fits without loss). Types are compared by structure through the
 * catalogs, never by their printed names: a type of the tenant schema matches the
 * target's type of the same name, kind and structure (enum labels, domain base
 * and checks, composite attributes, range subtype; arrays element by element);
 * any other type must be the same type (same OID) or a lossless widening
 * (integer to a wider integer or unconstrained numeric, real to double precision,
 * text types to text or a longer varchar, an enum to text, a domain to a type
 * its base fits). An enum fits another enum that has all its labels.
 *
 * @example
 * ```ts
 * typeMismatch(types, { oid: domainInTenant, mod: -1 }, { oid: domainInPublic, mod: -1 }, mapping) // undefined
 * ```
 */
export function typeMismatch(
  types: TypeCatalog,
  source: TypeUse,
  target: TypeUse,
  mapping: SchemaMapping,
): string | undefined {
  if (source.oid === target.oid) return modMismatch(types.get(source.oid), source, target)
  const s = types.get(source.oid)
  const t = types.get(target.oid)
  if (!s || !t) return 'the type is unknown to the catalogs'
  const named = `${kindName(s)} ${s.name}`
  if (s.kind === 'A') {
    if (t.kind !== 'A') return `an array cannot go into ${kindName(t)} ${t.display}`
    const inner = typeMismatch(
      types,
      { oid: s.element!.oid, mod: source.mod },
      { oid: t.element!.oid, mod: target.mod },
      mapping,
    )
    return inner && `array elements: ${inner}`
  }
  if (s.kind === 'd' && t.kind === 'd') {
    if (s.schema === mapping.source && t.schema === mapping.target && s.name === t.name) {
      const base = typeMismatch(types, s.base!, t.base!, mapping)
      if (base) return `domain ${s.name}: its base type differs (${base})`
      if (s.checks.join('\n') !== t.checks.join('\n')) {
        return `domain ${s.name} has ${describeChecks(s)} in the tenant schema but ${describeChecks(t)} in ${mapping.target}`
      }
      if (!s.notNull && t.notNull) return `domain ${s.name} is NOT NULL in ${mapping.target} only`
      return undefined
    }
  }
  if (s.kind === 'd') {
    // A domain's values are values of its base type.
    const base = typeMismatch(types, { oid: s.base!.oid, mod: s.base!.mod }, target, mapping)
    return base && `${named} (over ${types.get(s.base!.oid)?.display ?? '?'}): ${base}`
  }
  if (t.kind === 'd') {
    if (t.checks.length > 0 || t.notNull) {
      return `${kindName(t)} ${t.display} has constraints that ${s.display} values were never checked against`
    }
    return typeMismatch(types, source, t.base!, mapping)
  }
  if (s.kind === 'e') {
    if (t.kind === 'e') {
      const have = new Set(t.labels)
      const missing = s.labels.filter((l) => !have.has(l))
      return missing.length === 0
        ? undefined
        : `enum ${t.display} lacks the label(s) ${missing.map((l) => JSON.stringify(l)).join(', ')}`
    }
    return t.kind === 'b' && t.name === 'text' ? undefined : `an enum cannot go into ${t.display}`
  }
  if (s.kind === 'c' || s.kind === 'r' || s.kind === 'm') {
    if (t.kind !== s.kind) return `${named} cannot go into ${kindName(t)} ${t.display}`
    if (!(s.schema === mapping.source && t.schema === mapping.target && s.name === t.name)) {
      return `${named} of schema ${JSON.stringify(s.schema)} is not ${kindName(t)} ${t.display}`
    }
    if (s.kind === 'c') {
      const names = (x: TypeShape) => x.attributes.map((a) => a.name).join(', ')
      if (names(s) !== names(t))
        return `composite ${s.name} has (${names(s)}) but the target's has (${names(t)})`
      for (const [i, a] of s.attributes.entries()) {
        const inner = typeMismatch(types, a.type, t.attributes[i]!.type, mapping)
        if (inner) return `composite ${s.name}.${a.name}: ${inner}`
      }
      return undefined
    }
    const inner = typeMismatch(types, s.subtype!, t.subtype!, mapping)
    return inner && `range ${s.name}: ${inner}`
  }
  return baseMismatch(s, t, source, target)
}

function kindName(t: TypeShape): string {
  return (
    { A: 'array', e: 'enum', d: 'domain', c: 'composite', r: 'range', m: 'multirange' }[t.kind] ??
    'type'
  )
}

function describeChecks(t: TypeShape): string {
  return t.checks.length === 0 ? 'no CHECK' : t.checks.join(' AND ')
}

/**
 * True when a value of `source` goes into `target` by PostgreSQL's own cast: two different
 * types built from built-in ones only (a built-in scalar, a domain over one, an array of them),
 * where that cast widens exactly (`0.1::real` to the double 0.100000001490116..., which its
 * text `0.1` is not). Other pairs (an enum, composite or range of the tenant schema to the
 * target's) have no cast between them and go through text, as does a modifier change (a
 * `bit(3)` padded into a `bit(5)` by the cast is refused by the text's input).
 *
 * @example
 * ```ts
 * castsDirectly(types, realOid, float8Oid) // true
 * castsDirectly(types, tenantMoodOid, publicMoodOid) // false
 * ```
 */
export function castsDirectly(types: TypeCatalog, source: string, target: string): boolean {
  const builtIn = (oid: string): boolean => {
    const t = types.get(oid)
    if (t === undefined) return false
    if (t.kind === 'A') return builtIn(t.element!.oid)
    if (t.kind === 'd') return builtIn(t.base!.oid)
    return t.kind === 'b' && t.schema === 'pg_catalog'
  }
  return source !== target && builtIn(source) && builtIn(target)
}

/** Same type, other modifiers: fine when the target bounds no less. */
function modMismatch(t: TypeShape | undefined, s: TypeUse, u: TypeUse): string | undefined {
  if (s.mod === u.mod || u.mod === -1) return undefined
  const name = t?.display ?? 'the type'
  if (t && BOUNDED.has(t.name) && s.mod !== -1 && s.mod <= u.mod) return undefined
  return s.mod === -1
    ? `${name} without a bound cannot go into a bounded ${name}`
    : `${name} with a larger bound or other precision cannot go into a smaller one`
}

function baseMismatch(s: TypeShape, t: TypeShape, su: TypeUse, tu: TypeUse): string | undefined {
  const widen = `${s.display} does not fit in ${t.display}`
  const si = INT_RANK[s.name]
  const ti = INT_RANK[t.name]
  if (s.schema !== 'pg_catalog' || t.schema !== 'pg_catalog') return widen
  if (si !== undefined && ti !== undefined) return si <= ti ? undefined : widen
  if (si !== undefined && t.name === 'numeric') return tu.mod === -1 ? undefined : widen
  if (s.name === 'float4' && t.name === 'float8') return undefined
  if (TEXTUAL.has(s.name) && t.name === 'text') return undefined
  if (TEXTUAL.has(s.name) && t.name === 'varchar') {
    if (tu.mod === -1) return undefined
    return s.name !== 'text' && su.mod !== -1 && su.mod <= tu.mod ? undefined : widen
  }
  return widen
}
