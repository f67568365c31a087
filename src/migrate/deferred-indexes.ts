import type pg from 'pg'
import { MigrationError } from '../errors/index.js'
import { revokeAllButOwner } from '../sql/privileges.js'
import type { ConnectableQueryable, Queryable } from '../sql/queryable.js'
import { quoteLiteral, quoteQualified, withLiterals } from '../sql/quote.js'

/**
 * The table (in the target schema) that holds the definitions of the secondary
 * indexes a run dropped before copying into empty shared tables, until they are
 * built again.
 *
 * @example
 * ```ts
 * DEFERRED_INDEX_TABLE // 'rowtenancy_deferred_index'
 * ```
 */
export const DEFERRED_INDEX_TABLE = 'rowtenancy_deferred_index'

/**
 * An index dropped for the copy, to be built again from its definition.
 */
export interface DeferredIndex {
  readonly table: string
  readonly name: string
  /** `pg_get_indexdef`: the `CREATE INDEX` statement, schema-qualified. */
  readonly definition: string
}

/**
 * The indexes of these tables that a copy may drop and build afterwards: plain
 * (non-unique, not backing a constraint, not clustered, in the default tablespace,
 * with no comment and no per-column statistics target), valid, not a partition's
 * attached index, on a plain table the role owns that keeps a unique index leading
 * with the tenant column (the migration's own per-tenant lookups use that one).
 * Unique indexes stay: a duplicate must fail the tenant that brings it, not a
 * rebuild after its commit.
 */
const CANDIDATES = `
select c.relname as table, i.relname as name, pg_get_indexdef(i.oid) as definition
  from pg_index x
  join pg_class i on i.oid = x.indexrelid
  join pg_class c on c.oid = x.indrelid
  join pg_namespace n on n.oid = c.relnamespace
 where n.nspname = $1 and c.relname = any($2::text[]) and c.relkind = 'r'
   and not x.indisunique and not x.indisprimary and not x.indisexclusion and not x.indisclustered
   and x.indisvalid and x.indisready and not i.relispartition and i.reltablespace = 0
   and pg_has_role(c.relowner, 'USAGE')
   and not exists (select 1 from pg_constraint k where k.conindid = i.oid)
   and not exists (select 1 from pg_depend d where d.classid = 'pg_class'::regclass and d.objid = i.oid
                     and d.deptype in ('e', 'i'))
   and obj_description(i.oid, 'pg_class') is null
   and not exists (select 1 from pg_attribute a where a.attrelid = i.oid and a.attstattarget > 0)
   and exists (select 1 from pg_index u join pg_attribute t on t.attrelid = u.indrelid and t.attnum = u.indkey[0]
                where u.indrelid = c.oid and u.indisunique and u.indisvalid and t.attname = $3)
 order by 1, 2`

/** Whether the table of deferred indexes exists. */
async function tableExists(db: Queryable, schema: string): Promise<boolean> {
  const { rows } = await db.query('select to_regclass($1) is not null as ok', [
    quoteQualified(schema, DEFERRED_INDEX_TABLE),
  ])
  return rows[0]?.ok === true
}

/**
 * For a run into EMPTY shared tables: drops their secondary indexes (see the
 * candidates above) so the copy does not maintain them row by row, after
 * recording each definition in {@link DEFERRED_INDEX_TABLE}, in one transaction:
 * either nothing changed, or every dropped index is recorded. Does nothing (and
 * returns `[]`) when any of the tables holds a row, checked under the drop's lock.
 * {@link rebuildDeferredIndexes} builds them again; a run that crashes in between
 * leaves them recorded for the next run (or `verify`) to find.
 *
 * @example
 * ```ts
 * const dropped = await deferIndexes(client, 'public', ['book', 'author'], 'tenant_id')
 * // ... copy every tenant ...
 * await rebuildDeferredIndexes(pool, 'public', 2)
 * ```
 */
export async function deferIndexes(
  db: Queryable,
  schema: string,
  tables: readonly string[],
  tenantColumn: string,
): Promise<DeferredIndex[]> {
  if (tables.length === 0) return []
  const record = quoteQualified(schema, DEFERRED_INDEX_TABLE)
  try {
    // One round trip. Definitions with every name qualified (an empty search_path), so a build
    // under another search_path means the same.
    const opened = await db.query(
      "begin; select pg_advisory_xact_lock(hashtext('rowtenancy.deferred-index')); " +
        "select pg_catalog.set_config('search_path', '', true); " +
        withLiterals(CANDIDATES, [
          quoteLiteral(schema),
          `array[${tables.map(quoteLiteral).join(', ')}]`,
          quoteLiteral(tenantColumn),
        ]),
    )
    const found = (opened as unknown as { rows: DeferredIndex[] }[]).at(-1)!.rows
    if (found.length === 0) {
      await db.query('rollback')
      return []
    }
    const used = [...new Set(found.map((f) => f.table))]
    // The exclusive locks first, then the emptiness that holds until commit.
    await db.query(
      `lock table ${used.map((t) => quoteQualified(schema, t)).join(', ')} in access exclusive mode`,
    )
    // Size as well as rows: under FORCE ROW LEVEL SECURITY a role bound to no tenant sees no
    // rows, however many there are; an empty table's main fork has no pages.
    const empty = await db.query(
      `select ${used
        .map((t, i) => {
          const q = quoteQualified(schema, t)
          return `(pg_catalog.pg_relation_size(${quoteLiteral(q)}::regclass) = 0 and not exists (select 1 from ${q})) as "${i}"`
        })
        .join(', ')}`,
    )
    if (used.some((_t, i) => empty.rows[0]?.[String(i)] !== true)) {
      await db.query('rollback')
      return []
    }
    await db.query(`create table if not exists ${record} (
  index_name text primary key,
  table_name text not null,
  definition text not null
)`)
    // Its definitions are run as SQL later: nobody but its owner may touch it (default
    // privileges may have granted the runtime role DML on new tables of the schema).
    await revokeAllButOwner(db, record)
    await db.query(
      `insert into ${record} (index_name, table_name, definition)
       select * from unnest($1::text[], $2::text[], $3::text[])`,
      [found.map((f) => f.name), found.map((f) => f.table), found.map((f) => f.definition)],
    )
    await db.query(`drop index ${found.map((f) => quoteQualified(schema, f.name)).join(', ')}`)
    await db.query('commit')
    return found
  } catch (err) {
    await db.query('rollback').catch(() => {})
    throw err
  }
}

/**
 * The indexes a run dropped for its copy and has not built again (empty when
 * none, or when no run ever deferred any).
 *
 * @example
 * ```ts
 * (await unbuiltIndexes(pool, 'public')).map((i) => i.name) // ['book_title_idx']
 * ```
 */
export async function unbuiltIndexes(db: Queryable, schema: string): Promise<DeferredIndex[]> {
  if (!(await tableExists(db, schema))) return []
  const { rows } = await db.query(
    `select table_name as table, index_name as name, definition from ${quoteQualified(schema, DEFERRED_INDEX_TABLE)} order by 2, 1`,
  )
  return rows as DeferredIndex[]
}

/**
 * Builds every index {@link deferIndexes} recorded, `jobs` at a time, each in a
 * transaction of its own that also removes its record (a crash leaves each index
 * either built and forgotten, or recorded for the next run). An index that exists
 * again by that name is only forgotten. Drops the record table once it is empty.
 * Returns the indexes built.
 *
 * @example
 * ```ts
 * await rebuildDeferredIndexes(pool, 'public', 2) // [{ table: 'book', name: 'book_title_idx', ... }]
 * ```
 */
export async function rebuildDeferredIndexes(
  db: ConnectableQueryable,
  schema: string,
  jobs: number,
): Promise<DeferredIndex[]> {
  const queue = await unbuiltIndexes(db, schema)
  if (queue.length === 0) return []
  const record = quoteQualified(schema, DEFERRED_INDEX_TABLE)
  const built: DeferredIndex[] = []
  const worker = async () => {
    const client = await db.connect()
    try {
      for (let ix = queue.shift(); ix; ix = queue.shift()) {
        await client.query('begin')
        try {
          const gone = await client.query(
            `delete from ${record} where index_name = $1 returning to_regclass($2) is null as missing`,
            [ix.name, quoteQualified(schema, ix.name)],
          )
          if (gone.rows[0]?.missing === true) {
            if (!INDEX_DEFINITION.test(ix.definition)) {
              throw new Error(
                `its recorded definition is not one CREATE INDEX statement: ${JSON.stringify(ix.definition.slice(0, 200))}`,
              )
            }
            // The extended protocol runs exactly one statement.
            await (client as unknown as pg.ClientBase).query({
              text: ix.definition,
              queryMode: 'extended',
            } as pg.QueryConfig)
            built.push(ix)
          }
          await client.query('commit')
        } catch (err) {
          await client.query('rollback').catch(() => {})
          throw new MigrationError(
            `Building the index ${JSON.stringify(ix.name)} on ${schema}.${ix.table} again after the copy failed: ` +
              `${err instanceof Error ? err.message : String(err)}. Its definition stays in ${schema}.${DEFERRED_INDEX_TABLE}: ` +
              'fix what stops it and rerun the migration (or create the index yourself and delete its row there).',
            { cause: err },
          )
        }
      }
    } finally {
      client.release()
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, Math.min(jobs, queue.length)) }, worker))
  const client = await db.connect()
  try {
    await dropIfEmpty(client, record)
  } finally {
    client.release()
  }
  return built
}

/** What `pg_get_indexdef` gives: one CREATE [UNIQUE] INDEX statement. */
const INDEX_DEFINITION = /^CREATE (?:UNIQUE )?INDEX [^;]+$/

/** Drops the record table when no index is left in it (under its lock: a concurrent run may be adding). */
async function dropIfEmpty(db: Queryable, record: string): Promise<void> {
  await db.query('begin')
  try {
    await db.query("select pg_advisory_xact_lock(hashtext('rowtenancy.deferred-index'))")
    const { rows } = await db.query(`select not exists (select 1 from ${record}) as empty`)
    if (rows[0]?.empty === true) await db.query(`drop table ${record}`)
    await db.query('commit')
  } catch (err) {
    await db.query('rollback').catch(() => {})
    throw err
  }
}
