import type { TableFacts } from '../sql/catalog/index.js'
import type { Queryable } from '../sql/queryable.js'
import { type Finding, finding } from './findings.js'

/**
 * Keys and indexes of tenant-aware tables: the primary key, every unique constraint or
 * unique index, every exclusion constraint, and every other index must lead with the plain
 * tenant column (not an expression of it, not an INCLUDE column), unique and exclusion ones
 * comparing it as its type does (see `indexFlaw`); every foreign key between two
 * tenant-aware tables must pair the tenant columns (`(tenant_id, x) -> (tenant_id, id)`),
 * else a row can point at another tenant's row.
 *
 * @internal
 * @example
 * ```ts
 * const findings = await checkKeys(pool, tables, 'tenant_id')
 * ```
 */
export async function checkKeys(
  db: Queryable,
  tables: readonly TableFacts[],
  tenantColumn: string,
): Promise<Finding[]> {
  const byOid = new Map(tables.map((t) => [t.oid, t]))
  const oids = tables.filter((t) => t.tenantAttnum !== null).map((t) => t.oid)
  const scope: KeyScope = { db, byOid, oids, tenantColumn }
  return [...(await indexFindings(scope)), ...(await foreignKeyFindings(scope))]
}

/** The tenant-aware tables the key checks read, by oid. */
interface KeyScope {
  readonly db: Queryable
  readonly byOid: ReadonlyMap<number, TableFacts>
  readonly oids: readonly number[]
  readonly tenantColumn: string
}

/** The first operator-class oid not shipped with the server (`FirstNormalObjectId`). */
const FIRST_USER_OID = 16384

/**
 * Per index of a tenant-aware table: its key columns (INCLUDE ones apart) and, on the first
 * key, what may let two tenant ids compare equal.
 */
const INDEXES = `
select i.indrelid::int as oid, ic.relname as name, i.indisprimary as primary, i.indisunique as unique,
       (string_to_array(i.indkey::text, ' ')::int[])[1:i.indnkeyatts] as keys,
       (string_to_array(i.indkey::text, ' ')::int[])[i.indnkeyatts + 1:] as included,
       coalesce(i.indexprs::text ~ (':varattno ' || ta.attnum || ' '), false) as in_expression,
       con.conname as constraint, con.contype = 'x' as exclusion,
       (select case when o.oprname = '=' and n.nspname <> 'pg_catalog' then 'operator(' || n.nspname || '.=)' else o.oprname end
          from pg_operator o join pg_namespace n on n.oid = o.oprnamespace
         where o.oid = con.conexclop[1]) as first_op,
       -- the exclusion operator is its type's equality: the default btree class's =
       exists (select 1 from pg_operator o
                 join pg_opclass d on d.opcintype = o.oprleft and d.opcdefault
                                  and d.opcmethod = (select oid from pg_am where amname = 'btree')
                 join pg_amop da on da.amopfamily = d.opcfamily and da.amopstrategy = 3
                                and da.amoplefttype = d.opcintype and da.amoprighttype = d.opcintype
                where o.oid = con.conexclop[1] and da.amopopr = o.oid) as first_op_equal,
       (select co.collname from pg_collation co
         where co.oid = i.indcollation[0] and not co.collisdeterministic
           -- the column's own: TENANT_COLUMN_COLLATION says so
           and co.oid <> (select a.attcollation from pg_attribute a
                           where a.attrelid = i.indrelid and a.attnum = i.indkey[0])) as first_collation,
       -- btree uniqueness compares with the class's comparison function, whatever its =: one
       -- not shipped with the server, or a shipped one whose = is not the default class's
       (select opc.opcname from pg_opclass opc
         where opc.oid = i.indclass[0] and i.indisunique
           and (opc.oid >= ${FIRST_USER_OID} or not exists (
                select 1 from pg_amop a
                  join pg_opclass d on d.opcmethod = opc.opcmethod and d.opcdefault and d.opcintype = opc.opcintype
                  join pg_amop da on da.amopfamily = d.opcfamily and da.amopstrategy = 3
                                 and da.amoplefttype = d.opcintype and da.amoprighttype = d.opcintype
                 where a.amopfamily = opc.opcfamily and a.amopstrategy = 3 and a.amopopr = da.amopopr
                   and a.amoplefttype = opc.opcintype and a.amoprighttype = opc.opcintype))) as first_opclass
  from pg_index i
  join pg_class ic on ic.oid = i.indexrelid
  left join pg_attribute ta on ta.attrelid = i.indrelid and ta.attname = $2 and not ta.attisdropped
  left join pg_constraint con on con.conindid = i.indexrelid and con.conrelid = i.indrelid
                             and con.contype in ('p', 'u', 'x')
 where i.indrelid = any($1::oid[])
 order by ic.relname`

/** One row of `INDEXES`. */
interface IndexRow {
  readonly oid: number
  readonly name: string
  readonly primary: boolean
  readonly unique: boolean
  readonly keys: number[]
  readonly included: number[]
  readonly in_expression: boolean
  readonly constraint: string | null
  readonly exclusion: boolean
  readonly first_op: string | null
  readonly first_op_equal: boolean
  readonly first_collation: string | null
  readonly first_opclass: string | null
}

/** Primary keys, unique and exclusion constraints / indexes and other indexes that do not lead with the tenant column. */
async function indexFindings({ db, byOid, oids, tenantColumn }: KeyScope): Promise<Finding[]> {
  const out: Finding[] = []
  const indexes = await db.query(INDEXES, [oids, tenantColumn])
  for (const ix of indexes.rows as IndexRow[]) {
    const t = byOid.get(ix.oid)!
    const how = indexFlaw(ix, t.tenantAttnum!, tenantColumn)
    if (how === null) continue
    const object = `${t.qualified}.${ix.constraint ?? ix.name}`
    const folded = ix.first_collation !== null && ix.keys[0] === t.tenantAttnum
    if (ix.primary) {
      out.push(
        finding(
          'PRIMARY_KEY_WITHOUT_TENANT',
          object,
          `The primary key ${how}: ids are not scoped to the tenant (and Citus cannot distribute the table by ${tenantColumn}).`,
          `Make the primary key (${tenantColumn}, id): alter table ${t.quoted} drop constraint "${ix.constraint}", add primary key (${tenantColumn}, id)`,
        ),
      )
    } else if (ix.unique || ix.exclusion) {
      const what = ix.exclusion ? 'exclusion constraint' : ix.constraint ? 'constraint' : 'index'
      out.push(
        finding(
          'UNIQUE_WITHOUT_TENANT',
          object,
          `The ${ix.exclusion ? '' : 'unique '}${what} ${how}: one tenant's value blocks another's, and a conflict tells a tenant what another stored.`,
          ix.exclusion
            ? `Recreate it as exclude using gist (${tenantColumn} with =, ...)  -- btree_gist, the type's own =${folded ? `, ${tenantColumn} without the collation` : ''}`
            : folded
              ? `Recreate it as unique (${tenantColumn}, ...), ${tenantColumn} without the collation (or collate "C").`
              : ix.first_opclass !== null && ix.keys[0] === t.tenantAttnum
                ? `Recreate it as unique (${tenantColumn}, ...), ${tenantColumn} under its type's default operator class (without ${ix.first_opclass}).`
                : `Recreate it as unique (${tenantColumn}, ...), the plain column as the first key.`,
        ),
      )
    } else {
      out.push(
        finding(
          'INDEX_NOT_TENANT_LEADING',
          object,
          `The index ${how}: scoped queries (${tenantColumn} = $1 AND ...) cannot use it well.`,
          `Recreate it as (${tenantColumn}, ...).`,
          'warning',
        ),
      )
    }
  }
  return out
}

/**
 * What keeps an index from holding tenants apart, or null. Every index must lead with the
 * plain tenant column. A unique or exclusion one must also compare it as the type does: an
 * exclusion constraint with the type's own `=` (with `<>` only rows of two tenants conflict; an
 * operator spelled `=` elsewhere may deem two ids equal), under no nondeterministic collation
 * of the index's own (tenant ids that differ by case or accents would share its keys), and a
 * unique index under a shipped operator class with the type's `=` (btree uniqueness runs the
 * class's comparison function). Another index is merely as well scoped as the column.
 */
function indexFlaw(ix: IndexRow, tenantAttnum: number, tenantColumn: string): string | null {
  if (ix.keys[0] !== tenantAttnum) {
    if (ix.keys.includes(tenantAttnum)) return `does not lead with ${tenantColumn}`
    if (ix.included.includes(tenantAttnum))
      return `holds ${tenantColumn} only as an INCLUDE column, which it does not compare`
    if (ix.in_expression)
      return `has ${tenantColumn} only inside an expression, which may give two tenant ids one value`
    return `does not include ${tenantColumn}`
  }
  if (ix.exclusion && !ix.first_op_equal)
    return ix.first_op === '=' || ix.first_op?.startsWith('operator(')
      ? `compares ${tenantColumn} with ${ix.first_op}, not its type's equality`
      : `compares ${tenantColumn} with ${ix.first_op}, not =`
  if (!ix.unique && !ix.exclusion) return null
  if (ix.first_collation !== null)
    return `compares ${tenantColumn} under the nondeterministic collation ${ix.first_collation} (tenant ids that differ by case or accents share its keys)`
  if (ix.first_opclass !== null)
    return `compares ${tenantColumn} under the operator class ${ix.first_opclass}, not its type's default (its comparison may deem two tenant ids equal)`
  return null
}

/** Foreign keys between tenant-aware tables that do not pair the tenant columns. */
async function foreignKeyFindings({ db, byOid, oids, tenantColumn }: KeyScope): Promise<Finding[]> {
  const out: Finding[] = []
  const fks = await db.query(
    `select c.conrelid::int as oid, c.confrelid::int as ref, c.conname as name,
            c.conkey::int[] as keys, c.confkey::int[] as refkeys
       from pg_constraint c
      where c.contype = 'f' and c.conrelid = any($1::oid[]) and c.confrelid = any($1::oid[])
        -- the key the user made, not its internal copies on partitions (fixed on the parent),
        -- unless the parent's key is not audited here
        and not exists (select 1 from pg_constraint p where p.oid = c.conparentid
                           and p.conrelid = any($1::oid[]) and p.confrelid = any($1::oid[]))
      order by c.conname`,
    [oids],
  )
  for (const fk of fks.rows) {
    const from = byOid.get(fk.oid)!
    const to = byOid.get(fk.ref)!
    const keys = fk.keys as number[]
    const refkeys = fk.refkeys as number[]
    const paired = keys.some((k, i) => k === from.tenantAttnum && refkeys[i] === to.tenantAttnum)
    if (paired) continue
    out.push(
      finding(
        'FOREIGN_KEY_WITHOUT_TENANT',
        `${from.qualified}.${fk.name}`,
        `The foreign key to ${to.qualified} does not pair ${tenantColumn} with ${tenantColumn}: a row can reference another tenant's row.`,
        `Recreate it as foreign key (${tenantColumn}, ...) references ${to.quoted} (${tenantColumn}, id).`,
      ),
    )
  }
  return out
}
