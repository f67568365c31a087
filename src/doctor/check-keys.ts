import type { TableFacts } from '../sql/catalog/index.js'
import type { Queryable } from '../sql/queryable.js'
import { type Finding, finding } from './findings.js'

/**
 * Keys and indexes of tenant-aware tables: the primary key, every unique
 * constraint or unique index, every exclusion constraint (comparing it with `=`; unique and
 * exclusion ones under a deterministic collation of their own, if any), and every
 * other index must lead with the tenant column; every foreign key between two tenant-aware tables must pair the
 * tenant columns (`(tenant_id, x) -> (tenant_id, id)`), else a row can point at
 * another tenant's row.
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

/** Primary keys, unique and exclusion constraints / indexes and other indexes that do not lead with the tenant column. */
async function indexFindings({ db, byOid, oids, tenantColumn }: KeyScope): Promise<Finding[]> {
  const out: Finding[] = []
  const indexes = await db.query(
    `select i.indrelid::int as oid, ic.relname as name, i.indisprimary as primary, i.indisunique as unique,
            string_to_array(i.indkey::text, ' ')::int[] as keys, con.conname as constraint,
            con.contype = 'x' as exclusion,
            (select o.oprname from pg_operator o where o.oid = con.conexclop[1]) as first_op,
            (select co.collname from pg_collation co
              where co.oid = i.indcollation[0] and not co.collisdeterministic
                -- the column's own: TENANT_COLUMN_COLLATION says so
                and co.oid <> (select a.attcollation from pg_attribute a
                                where a.attrelid = i.indrelid and a.attnum = i.indkey[0])) as first_collation
       from pg_index i
       join pg_class ic on ic.oid = i.indexrelid
       left join pg_constraint con on con.conindid = i.indexrelid and con.conrelid = i.indrelid
                                  and con.contype in ('p', 'u', 'x')
      where i.indrelid = any($1::oid[])
      order by ic.relname`,
    [oids],
  )
  for (const ix of indexes.rows) {
    const t = byOid.get(ix.oid)!
    const keys = ix.keys as number[]
    // An exclusion constraint holds tenants apart only when it compares the tenant column with
    // `=`: with `<>` only rows of two tenants conflict.
    const apart = !ix.exclusion || ix.first_op === '='
    // A collation of the index's own on the tenant key (not the column's): under a nondeterministic one, tenant ids
    // that differ by case or accents ("ACME", "acme") share one key space. Only uniqueness
    // crosses tenants that way; another index is merely as well scoped as the column.
    const folded = (ix.unique || ix.exclusion) && ix.first_collation !== null
    if (keys[0] === t.tenantAttnum && apart && !folded) continue
    const includes = keys.includes(t.tenantAttnum!)
    const how =
      keys[0] !== t.tenantAttnum
        ? includes
          ? `does not lead with ${tenantColumn}`
          : `does not include ${tenantColumn}`
        : !apart
          ? `compares ${tenantColumn} with ${ix.first_op}, not =`
          : `compares ${tenantColumn} under the nondeterministic collation ${ix.first_collation} (tenant ids that differ by case or accents share its keys)`
    const object = `${t.qualified}.${ix.constraint ?? ix.name}`
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
            ? `Recreate it as exclude using gist (${tenantColumn} with =, ...)  -- btree_gist${folded ? `, ${tenantColumn} without the collation` : ''}`
            : folded
              ? `Recreate it as unique (${tenantColumn}, ...), ${tenantColumn} without the collation (or collate "C").`
              : `Recreate it as unique (${tenantColumn}, ...).`,
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

/** Foreign keys between tenant-aware tables that do not pair the tenant columns. */
async function foreignKeyFindings({ db, byOid, oids, tenantColumn }: KeyScope): Promise<Finding[]> {
  const out: Finding[] = []
  const fks = await db.query(
    `select conrelid::int as oid, confrelid::int as ref, conname as name,
            conkey::int[] as keys, confkey::int[] as refkeys
       from pg_constraint
      where contype = 'f' and conrelid = any($1::oid[]) and confrelid = any($1::oid[])
      order by conname`,
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
