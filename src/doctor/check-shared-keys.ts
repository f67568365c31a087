import type { TableFacts } from '../sql/catalog/index.js'
import { DEFAULTS } from '../sql/defaults.js'
import type { Queryable } from '../sql/queryable.js'
import { quoteIdent } from '../sql/quote.js'
import { securityInvoker } from '../sql/reloptions.js'
import { type Finding, finding } from './findings.js'

/**
 * Foreign keys between a shared table (one without the tenant column) and a tenant-aware
 * one. A foreign key is checked, and its ON DELETE / ON UPDATE action run, as the owner of the
 * table, without row level security: so a shared table's key into a tenant-aware table that
 * the runtime role may write tells a tenant whether another tenant has a key (the insert
 * succeeds or fails on that tenant's rows), and a tenant-aware table's cascading key into a
 * shared table the runtime role may delete or update from lets one tenant delete or rewrite
 * every tenant's rows. Keys between tenant-aware tables are `checkKeys`' (they must pair the
 * tenant columns). The runtime role writes a shared table itself, a partition of it or a table
 * above it, or through a view that writes one of these as its owner (no `security_invoker`; one
 * level of view; see `SHARED_KEYS`). Without a runtime role to audit, every such key is
 * reported. Keys into the tenant directory (`tenants`, ...) are left to ROLE_WRITES_DIRECTORY:
 * the runtime role must not write it at all.
 *
 * A tenant-aware table's plain key (no action, restrict) into a shared table is not reported:
 * deleting a shared row some tenant still uses fails, which tells only that some tenant does.
 *
 * @internal
 * @example
 * ```ts
 * const findings = await checkSharedForeignKeys(pool, tables, 'tenant_id', 'app_runtime')
 * ```
 */
export async function checkSharedForeignKeys(
  db: Queryable,
  tables: readonly TableFacts[],
  tenantColumn: string,
  runtimeRole: string | undefined,
  tenantsSchema: string = DEFAULTS.schema,
): Promise<Finding[]> {
  const tenant = tables.filter((t) => t.tenantAttnum !== null)
  if (tenant.length === 0) return []
  const scope: SharedKeyScope = {
    db,
    byOid: new Map(tenant.map((t) => [t.oid, t])),
    tenantColumn,
    role: runtimeRole,
    tenantsSchema,
  }
  return [...(await keysFromShared(scope)), ...(await actionsFromShared(scope))]
}

/** What the shared-key checks read. */
interface SharedKeyScope {
  readonly db: Queryable
  readonly byOid: ReadonlyMap<number, TableFacts>
  readonly tenantColumn: string
  readonly role: string | undefined
  readonly tenantsSchema: string
}

/**
 * A CTE of `SHARED_KEYS`: the views that write each relation of `rels` with their owner's
 * rights (no `security_invoker`; one level of view), and the events (`pg_relation_is_updatable`
 * bits: 4 update, 8 insert, 16 delete) for which they do. A view writes the relation an action
 * of one of its rules (other than `_RETURN`) reaches, for the rule's event; and, where it is
 * automatically updatable (for the events no unconditional INSTEAD rule takes), the one
 * relation it selects from: the first relation of its range table other than itself (before
 * PostgreSQL 16 the range table opens with the view itself, as OLD and NEW; an automatically
 * updatable view has no WITH and one FROM item, a table or view, so no other entry comes
 * before it). A relation the view only reads (in a subquery, a join) is not written. INSTEAD
 * OF triggers are left out: they run as the caller.
 */
const WRITERS = `writers (rel, view, events) as (
  select x.rel, rw.ev_class,
         pg_catalog.bit_or(case
           when rw.rulename <> '_RETURN' then 1 << rw.ev_type::text::int
           when (select m.id[1]::oid
                   from pg_catalog.regexp_matches(rw.ev_action::text, ':relid (\\d+)', 'g') with ordinality m(id, n)
                  where m.id[1]::oid <> rw.ev_class
                  order by m.n limit 1) = x.rel
             then 28 & ~coalesce((select pg_catalog.bit_or(1 << i.ev_type::text::int)
                                    from pg_catalog.pg_rewrite i
                                   where i.ev_class = rw.ev_class and i.is_instead
                                     and i.rulename <> '_RETURN' and i.ev_qual::text = '<>'), 0)
           else 0 end) & pg_catalog.pg_relation_is_updatable(rw.ev_class, false)
    from (select distinct rel from rels) x
    join pg_catalog.pg_depend d on d.refclassid = 'pg_catalog.pg_class'::regclass and d.refobjid = x.rel
                               and d.classid = 'pg_catalog.pg_rewrite'::regclass
    join pg_catalog.pg_rewrite rw on rw.oid = d.objid
    join pg_catalog.pg_class v on v.oid = rw.ev_class and v.relkind = 'v'
   where not ${securityInvoker('v')}
   group by 1, 2)`

/**
 * The foreign keys between tables without the tenant column and those in `$1`, made by the
 * user (a key into or of a partitioned table has internal copies on its partitions, which
 * `conparentid` ties to it: a copy counts only when the key's own tenant table is not audited),
 * with what `$4` may do to them (null: no role to audit).
 *
 * What the runtime role may do is read over every relation whose writes reach the shared
 * table's rows: its partitions, at any depth (each holds the key or the referenced rows: an
 * insert into a partition is checked, a delete from one runs the action), and the tables above
 * it (a write to a partitioned table is routed down to it; an update or delete of an
 * inheritance parent reaches the child's rows, an insert stays in the parent). Inheritance
 * children are left out: a foreign key is not inherited, and one into a table references its
 * own rows only. On each of these relations the role writes directly or through a view that
 * writes it as its owner (see `WRITERS`).
 */
const SHARED_KEYS = `
with recursive keys as (
  select c.conname as name, (case when $2::boolean then c.confrelid else c.conrelid end)::int as tenant_table,
         format('%s.%s', n.nspname, s.relname) as qualified, format('%I.%I', n.nspname, s.relname) as quoted,
         c.confdeltype as on_delete, c.confupdtype as on_update, s.oid as shared,
         -- the key's columns on the shared table
         (case when $2::boolean then c.conkey else c.confkey end) as cols
    from pg_catalog.pg_constraint c
    join pg_catalog.pg_class s on s.oid = case when $2::boolean then c.conrelid else c.confrelid end
    join pg_catalog.pg_namespace n on n.oid = s.relnamespace
   where c.contype = 'f'
     and (case when $2::boolean then c.confrelid else c.conrelid end) = any($1::oid[])
     and not exists (select 1 from pg_catalog.pg_constraint p where p.oid = c.conparentid
                       and (case when $2::boolean then p.confrelid else p.conrelid end) = any($1::oid[]))
     and not exists (select 1 from pg_catalog.pg_attribute a
                      where a.attrelid = s.oid and a.attname = $3 and a.attnum > 0 and not a.attisdropped)
     -- the tenant directory: ROLE_WRITES_DIRECTORY reports the runtime role writing it
     and not exists (select 1 from unnest(array['tenants', 'tenant_domains', 'tenant_placements']) d(name)
                      where pg_catalog.to_regclass(format('%I.%I', $5::text, d.name)) = s.oid)
),
down (shared, rel) as (
  select distinct shared, shared from keys
  union
  select d.shared, i.inhrelid
    from down d
    join pg_catalog.pg_inherits i on i.inhparent = d.rel
    join pg_catalog.pg_class k on k.oid = i.inhrelid and k.relispartition
),
up (shared, rel, inserts) as (
  select distinct shared, shared, true from keys
  union
  select u.shared, i.inhparent, u.inserts and k.relispartition
    from up u
    join pg_catalog.pg_inherits i on i.inhrelid = u.rel
    join pg_catalog.pg_class k on k.oid = u.rel
),
-- inserts: an insert into rel reaches the shared table's rows
rels (shared, rel, inserts) as (
  select shared, rel, true from down
  union
  select shared, rel, inserts from up
),
${WRITERS}
select k.name, k.tenant_table, k.qualified, k.quoted, k.on_delete, k.on_update,
       -- the runtime role may set the key's columns: insert or update any of them (on the table,
       -- or through a view that writes it)
       (r.oid is null or exists (
          select 1 from rels x
           where x.shared = k.shared
             and (exists (select 1 from pg_catalog.pg_attribute a
                            join pg_catalog.pg_attribute b on b.attrelid = x.rel and b.attname = a.attname
                                                          and b.attnum > 0 and not b.attisdropped
                           where a.attrelid = k.shared and a.attnum = any(k.cols)
                             and pg_catalog.has_column_privilege(r.oid, x.rel, b.attnum,
                                   case when x.inserts then 'INSERT, UPDATE' else 'UPDATE' end))
                  or exists (select 1 from writers w
                              where w.rel = x.rel
                                and ((x.inserts and w.events & 8 <> 0
                                      and pg_catalog.has_table_privilege(r.oid, w.view, 'INSERT'))
                                     or (w.events & 4 <> 0
                                         and pg_catalog.has_table_privilege(r.oid, w.view, 'UPDATE'))))))) as writes_key,
       (r.oid is null or exists (
          select 1 from rels x
           where x.shared = k.shared
             and (pg_catalog.has_table_privilege(r.oid, x.rel, 'DELETE')
                  or exists (select 1 from writers w
                              where w.rel = x.rel and w.events & 16 <> 0
                                and pg_catalog.has_table_privilege(r.oid, w.view, 'DELETE'))))) as deletes_ref,
       (r.oid is null or exists (
          select 1 from rels x
           where x.shared = k.shared
             and (exists (select 1 from pg_catalog.pg_attribute a
                            join pg_catalog.pg_attribute b on b.attrelid = x.rel and b.attname = a.attname
                                                          and b.attnum > 0 and not b.attisdropped
                           where a.attrelid = k.shared and a.attnum = any(k.cols)
                             and pg_catalog.has_column_privilege(r.oid, x.rel, b.attnum, 'UPDATE'))
                  or exists (select 1 from writers w
                              where w.rel = x.rel and w.events & 4 <> 0
                                and pg_catalog.has_table_privilege(r.oid, w.view, 'UPDATE'))))) as updates_ref
  from keys k
  left join pg_catalog.pg_roles r on r.rolname = $4::text
 order by 4, 1`

/** One row of `SHARED_KEYS`. */
interface SharedKeyRow {
  readonly name: string
  readonly tenant_table: number
  readonly qualified: string
  readonly quoted: string
  readonly on_delete: string
  readonly on_update: string
  readonly writes_key: boolean
  readonly deletes_ref: boolean
  readonly updates_ref: boolean
}

/** `$2`: keys of shared tables into tenant-aware ones (true) or the other way (false). */
async function sharedKeys(
  { db, byOid, tenantColumn, role, tenantsSchema }: SharedKeyScope,
  fromShared: boolean,
): Promise<SharedKeyRow[]> {
  const { rows } = await db.query(SHARED_KEYS, [
    [...byOid.keys()],
    fromShared,
    tenantColumn,
    role ?? null,
    tenantsSchema,
  ])
  return rows as SharedKeyRow[]
}

/** The runtime role as SQL in a fix. */
function roleSql(role: string | undefined): string {
  return role === undefined ? '<runtime role>' : quoteIdent(role)
}

/** A shared table's key into a tenant-aware table, on columns the runtime role may set. */
async function keysFromShared(scope: SharedKeyScope): Promise<Finding[]> {
  const { byOid, tenantColumn, role } = scope
  const rows = (await sharedKeys(scope, true)).filter((k) => k.writes_key)
  return rows.map((k) => {
    const to = byOid.get(k.tenant_table)!
    return finding(
      'FOREIGN_KEY_FROM_SHARED_TABLE',
      `${k.qualified}.${k.name}`,
      `The shared table ${k.qualified} (no ${tenantColumn}) has a foreign key into the tenant-aware ` +
        `table ${to.qualified}, on columns the runtime role may insert or update: the key is checked ` +
        "without row level security, so a write succeeds or fails on other tenants' rows (it tells " +
        "whether another tenant has that key), and a shared row can point at any tenant's row.",
      `Make ${k.quoted} tenant-aware (add ${tenantColumn}, row level security, and foreign key ` +
        `(${tenantColumn}, ...) references ${to.quoted} (${tenantColumn}, id)), or keep it to the ` +
        `owner: revoke insert, update on ${k.quoted} from ${roleSql(role)}`,
    )
  })
}

/** The ON DELETE / ON UPDATE actions that write the referencing rows. */
const WRITING_ACTIONS: Readonly<Record<string, string>> = {
  c: 'cascade',
  n: 'set null',
  d: 'set default',
}

/**
 * A tenant-aware table's key into a shared table with an action that writes its rows, when the
 * runtime role may delete (ON DELETE) or update the referenced columns of (ON UPDATE) the
 * shared table.
 */
async function actionsFromShared(scope: SharedKeyScope): Promise<Finding[]> {
  const { byOid, role } = scope
  const out: Finding[] = []
  for (const k of await sharedKeys(scope, false)) {
    const onDelete = k.deletes_ref ? WRITING_ACTIONS[k.on_delete] : undefined
    const onUpdate = k.updates_ref ? WRITING_ACTIONS[k.on_update] : undefined
    if (onDelete === undefined && onUpdate === undefined) continue
    const from = byOid.get(k.tenant_table)!
    const actions = [onDelete && `on delete ${onDelete}`, onUpdate && `on update ${onUpdate}`]
      .filter(Boolean)
      .join(', ')
    const verbs = [onDelete && 'delete', onUpdate && 'update'].filter(Boolean).join(', ')
    out.push(
      finding(
        'FOREIGN_KEY_ACTION_ACROSS_TENANTS',
        `${from.qualified}.${k.name}`,
        `The foreign key into the shared table ${k.qualified} has ${actions}, and the runtime role ` +
          `may ${verbs.replace(', ', ' and ')} rows of ${k.qualified}: the action runs without row ` +
          'level security, so one tenant deleting or changing a shared row deletes or rewrites every ' +
          "tenant's rows that reference it.",
        `Recreate the key without the action (no action, the default), or keep ${k.quoted} to the ` +
          `owner: revoke ${verbs} on ${k.quoted} from ${roleSql(role)}`,
      ),
    )
  }
  return out
}
