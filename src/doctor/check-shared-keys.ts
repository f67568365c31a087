import type { TableFacts } from '../sql/catalog/index.js'
import { DEFAULTS } from '../sql/defaults.js'
import type { Queryable } from '../sql/queryable.js'
import { quoteIdent } from '../sql/quote.js'
import { type Finding, finding } from './findings.js'

/**
 * Foreign keys between a shared table (one without the tenant column) and a tenant-aware
 * one. A foreign key is checked, and its ON DELETE / ON UPDATE action run, as the owner of the
 * table, without row level security: so a shared table's key into a tenant-aware table that
 * the runtime role may write tells a tenant whether another tenant has a key (the insert
 * succeeds or fails on that tenant's rows), and a tenant-aware table's cascading key into a
 * shared table the runtime role may delete or update from lets one tenant delete or rewrite
 * every tenant's rows. Keys between tenant-aware tables are `checkKeys`' (they must pair the
 * tenant columns). The runtime role writes a shared table itself or through a view over it
 * that runs as its owner (no `security_invoker`; one level of view). Without a runtime role to
 * audit, every such key is reported. Keys into the
 * tenant directory (`tenants`, ...) are left to ROLE_WRITES_DIRECTORY: the runtime role must
 * not write it at all.
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
 * The foreign keys between tables without the tenant column and those in `$1`, made by the
 * user (a key into or of a partitioned table has internal copies on its partitions, which
 * `conparentid` ties to it: a copy counts only when the key's own tenant table is not audited),
 * with what `$4` may do to them (null: no role to audit).
 */
const SHARED_KEYS = `
select c.conname as name, (case when $2::boolean then c.confrelid else c.conrelid end)::int as tenant_table,
       format('%s.%s', n.nspname, s.relname) as qualified, format('%I.%I', n.nspname, s.relname) as quoted,
       c.confdeltype as on_delete, c.confupdtype as on_update,
       -- the runtime role may set the key's columns: insert or update any of them (on the table,
       -- or through a view that writes it)
       (r.oid is null or exists (select 1 from unnest(c.conkey) k(attnum)
          where pg_catalog.has_column_privilege(r.oid, c.conrelid, k.attnum, 'INSERT, UPDATE'))
        or exists (select 1 from unnest(w.views) v(oid)
                    where pg_catalog.has_table_privilege(r.oid, v.oid, 'INSERT, UPDATE')
                      and pg_catalog.pg_relation_is_updatable(v.oid, false) & 12 <> 0)) as writes_key,
       (r.oid is null or pg_catalog.has_table_privilege(r.oid, c.confrelid, 'DELETE')
        or exists (select 1 from unnest(w.views) v(oid)
                    where pg_catalog.has_table_privilege(r.oid, v.oid, 'DELETE')
                      and pg_catalog.pg_relation_is_updatable(v.oid, false) & 16 <> 0)) as deletes_ref,
       (r.oid is null or exists (select 1 from unnest(c.confkey) k(attnum)
          where pg_catalog.has_column_privilege(r.oid, c.confrelid, k.attnum, 'UPDATE'))
        or exists (select 1 from unnest(w.views) v(oid)
                    where pg_catalog.has_table_privilege(r.oid, v.oid, 'UPDATE')
                      and pg_catalog.pg_relation_is_updatable(v.oid, false) & 4 <> 0)) as updates_ref
  from pg_catalog.pg_constraint c
  join pg_catalog.pg_class s on s.oid = case when $2::boolean then c.conrelid else c.confrelid end
  join pg_catalog.pg_namespace n on n.oid = s.relnamespace
  left join pg_catalog.pg_roles r on r.rolname = $4::text
  -- views over the shared table that write it with their owner's rights (no security_invoker;
  -- auto-updatable or with an instead rule: pg_relation_is_updatable, INSTEAD OF triggers apart,
  -- which run as the caller)
  cross join lateral (
    select array_agg(distinct v.oid) as views
      from pg_catalog.pg_depend d
      join pg_catalog.pg_rewrite rw on rw.oid = d.objid
      join pg_catalog.pg_class v on v.oid = rw.ev_class and v.relkind = 'v'
     where d.classid = 'pg_rewrite'::regclass and d.refclassid = 'pg_class'::regclass
       and d.refobjid = s.oid
       and not exists (select 1 from unnest(v.reloptions) o where o ~* '^security_invoker=(true|on|1|yes)$')) w
 where c.contype = 'f'
   and (case when $2::boolean then c.confrelid else c.conrelid end) = any($1::oid[])
   and not exists (select 1 from pg_catalog.pg_constraint p where p.oid = c.conparentid
                     and (case when $2::boolean then p.confrelid else p.conrelid end) = any($1::oid[]))
   and not exists (select 1 from pg_catalog.pg_attribute a
                    where a.attrelid = s.oid and a.attname = $3 and a.attnum > 0 and not a.attisdropped)
   -- the tenant directory: ROLE_WRITES_DIRECTORY reports the runtime role writing it
   and not exists (select 1 from unnest(array['tenants', 'tenant_domains', 'tenant_placements']) d(name)
                    where pg_catalog.to_regclass(format('%I.%I', $5::text, d.name)) = s.oid)
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
