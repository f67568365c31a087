import { InvalidInputError } from '../errors/index.js'
import { DEFAULTS } from '../sql/defaults.js'
import { inTransaction, type Queryable } from '../sql/queryable.js'
import { escapeRegExp } from '../sql/regexp.js'
import { TENANT_ID_TYPES } from '../tenants/id-types.js'
import {
  RLS_POLICY_NAME,
  RLS_SETTING,
  type RlsPolicy,
  type TableRef,
  type TenantPolicyOptions,
  tenantPolicy,
} from './rls-policy.js'
import { renderRlsDisable, renderRlsEnable, renderTable } from './rls-render.js'

/**
 * The RLS state of one table as PostgreSQL reports it.
 */
export interface RlsTableStatus {
  /** `schema.table`. */
  readonly table: string
  readonly exists: boolean
  /** ENABLE ROW LEVEL SECURITY is on. */
  readonly enabled: boolean
  /** FORCE ROW LEVEL SECURITY is on (the owner is subject to the policy too). */
  readonly forced: boolean
  /** rowtenancy's policy: present and as expected, present but different, or missing. */
  readonly policy: 'ok' | 'different' | 'missing'
}

/**
 * What {@link enableRls} / {@link disableRls} did.
 *
 * @example
 * ```ts
 * const { changed, unchanged } = await enableRls(pool, ['accounts'])
 * ```
 */
export interface RlsApplyResult {
  readonly changed: readonly string[]
  readonly unchanged: readonly string[]
  readonly statements: readonly string[]
}

/**
 * True when a policy expression (as `pg_get_expr` prints it) is rowtenancy's
 * tenant predicate on `column`: `column = nullif(current_setting('rowtenancy.tenant_id', true), '')::type`
 * (with `sealed`: `column = nullif((select rowtenancy_sealed_tenant()), '')::type`),
 * the whole expression.
 *
 * @internal
 * @example
 * ```ts
 * isTenantPredicate("(tenant_id = (NULLIF(current_setting('rowtenancy.tenant_id'::text, true), ''::text))::bigint)", 'tenant_id') // true
 * ```
 */
export function isTenantPredicate(
  expr: string | null | undefined,
  column: string,
  sealed = false,
): boolean {
  if (!expr) return false
  // The whole expression, as PostgreSQL prints the policy rowtenancy writes: a column compared
  // with the setting and nothing else around it (a coalesce(..., tenant_id) would show every
  // tenant's rows to a session bound to none).
  const s = expr.toLowerCase().replace(/\s+/g, '')
  const col = escapeRegExp(column.toLowerCase().replace(/\s+/g, ''))
  const value = sealed
    ? String.raw`\(select(?:public\.)?rowtenancy_sealed_tenant\(\)asrowtenancy_sealed_tenant\)`
    : String.raw`current_setting\('${escapeRegExp(RLS_SETTING)}'::text,true\)`
  const nullif = String.raw`nullif\(${value},''::text\)`
  // A cast to a tenant id type only: a lossy one matches other tenants' ids too (`::name` keeps
  // 63 bytes of a text id, so a tenant whose id is 63 bytes long is seen by longer ids).
  const cast = `::(?:${TENANT_ID_TYPES.join('|')})`
  return new RegExp(
    String.raw`^\(?(?:${col}|"${col}")=(?:${nullif}|\(${nullif}\)${cast})\)?$`,
  ).test(s)
}

/**
 * Every table of the current database with the tenant column, rowtenancy's own
 * lookup tables (`tenants`, `tenant_domains`, `rowtenancy_*`) aside, and for
 * each the table its tenant column alone is a foreign key into, when that is
 * another table than `tenants` and not into `tenants` too (`keyed` null otherwise).
 */
const TABLES_WITH_TENANT_COLUMN = `
select n.nspname as schema, c.relname as name, format('%I.%I', n.nspname, c.relname) as qualified,
       (select format('%I.%I', rn.nspname, ref.relname)
          from pg_constraint fk
          join pg_class ref on ref.oid = fk.confrelid
          join pg_namespace rn on rn.oid = ref.relnamespace
         where fk.conrelid = c.oid and fk.contype = 'f' and fk.conkey = array[a.attnum]
           and ref.relname <> 'tenants'
           -- a column that is a key into tenants too is a tenant column
           and not exists (
             select 1 from pg_constraint tk join pg_class tr on tr.oid = tk.confrelid
              where tk.conrelid = c.oid and tk.contype = 'f' and tk.conkey = array[a.attnum]
                and tr.relname = 'tenants')
         order by 1 limit 1) as keyed
  from pg_class c
  join pg_namespace n on n.oid = c.relnamespace
  join pg_attribute a on a.attrelid = c.oid and a.attname = $1 and a.attnum > 0 and not a.attisdropped
 where c.relkind in ('r', 'p')
   and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_%'
   and c.relname not in ('tenants', 'tenant_domains') and c.relname not like 'rowtenancy\\_%'
 order by 1, 2`

/**
 * Tables of the current database that have a tenant column, leaving out
 * rowtenancy's own lookup tables (`tenants`, `tenant_domains`, `rowtenancy_*`),
 * which must stay readable before a tenant is known, and the tables whose
 * tenant column alone is a foreign key into another table than `tenants` (a
 * legacy django-tenants `customers_domain.tenant_id -> customers_client`: see
 * {@link tablesKeyedElsewhere}).
 *
 * @example
 * ```ts
 * await discoverTenantTables(pool) // [{ schema: 'public', name: 'accounts' }, ...]
 * ```
 */
export async function discoverTenantTables(
  db: Queryable,
  options: { tenantColumn?: string | undefined } = {},
): Promise<TableRef[]> {
  return (await tenantTableDiscovery(db, options)).tables
}

/**
 * A table with the tenant column that {@link discoverTenantTables} leaves out,
 * and the table its tenant column is a foreign key into.
 */
export interface TableKeyedElsewhere extends TableRef {
  readonly schema: string
  /** `schema.table`, quoted where needed. */
  readonly qualified: string
  /** `schema.table` (quoted where needed) the tenant column references. */
  readonly references: string
}

/**
 * The tables {@link discoverTenantTables} leaves out because their tenant
 * column alone is a foreign key into another table than `tenants`: `rls enable`
 * gives them no policy and the shell does not filter them, so one that holds
 * tenant data is every tenant's to read.
 *
 * @example
 * ```ts
 * await tablesKeyedElsewhere(pool) // [{ schema: 'public', name: 'invoices', references: 'public.organizations' }]
 * ```
 */
export async function tablesKeyedElsewhere(
  db: Queryable,
  options: { tenantColumn?: string | undefined } = {},
): Promise<TableKeyedElsewhere[]> {
  return (await tenantTableDiscovery(db, options)).keyedElsewhere
}

/**
 * Both answers of one catalog query: the tables {@link discoverTenantTables}
 * finds and those it leaves out ({@link tablesKeyedElsewhere}), for a caller
 * that needs both.
 *
 * @internal
 */
export async function tenantTableDiscovery(
  db: Queryable,
  options: { tenantColumn?: string | undefined } = {},
): Promise<{ tables: TableRef[]; keyedElsewhere: TableKeyedElsewhere[] }> {
  const { rows } = await db.query(TABLES_WITH_TENANT_COLUMN, [
    options.tenantColumn ?? DEFAULTS.tenantColumn,
  ])
  const tables: TableRef[] = []
  const keyedElsewhere: TableKeyedElsewhere[] = []
  for (const r of rows) {
    const ref = { schema: r.schema as string, name: r.name as string }
    if (r.keyed === null) tables.push(ref)
    else keyedElsewhere.push({ ...ref, qualified: r.qualified, references: r.keyed })
  }
  return { tables, keyedElsewhere }
}

/**
 * Reads the RLS state of each table.
 *
 * @example
 * ```ts
 * await rlsStatus(pool, [{ name: 'accounts' }]) // [{ table: 'public.accounts', enabled: true, forced: true, policy: 'ok', ... }]
 * ```
 */
export async function rlsStatus(
  db: Queryable,
  tables: readonly TableRef[],
  options: TenantPolicyOptions = {},
): Promise<RlsTableStatus[]> {
  const column = options.tenantColumn ?? DEFAULTS.tenantColumn
  const { rows } = await db.query(
    `select t.ord, n.nspname as schema, c.relname as name, c.relrowsecurity as enabled,
            c.relforcerowsecurity as forced, p.polname is not null as has_policy,
            p.polpermissive as permissive, p.polcmd as cmd, p.polroles = '{0}' as to_public,
            pg_get_expr(p.polqual, p.polrelid) as using, pg_get_expr(p.polwithcheck, p.polrelid) as check
       from unnest($1::text[]) with ordinality as t(name, ord)
       left join pg_class c on c.oid = to_regclass(t.name)
       left join pg_namespace n on n.oid = c.relnamespace
       left join pg_policy p on p.polrelid = c.oid and p.polname = $2
      order by t.ord`,
    [tables.map(renderTable), RLS_POLICY_NAME],
  )
  return rows.map((r, i) => {
    const ref = tables[i]!
    const exists = r.name !== null
    const ok =
      r.has_policy &&
      r.permissive &&
      r.cmd === '*' &&
      r.to_public &&
      isTenantPredicate(r.using, column, options.sealed === true) &&
      isTenantPredicate(r.check, column, options.sealed === true)
    return Object.freeze({
      table: exists ? `${r.schema}.${r.name}` : `${ref.schema ? `${ref.schema}.` : ''}${ref.name}`,
      exists,
      enabled: Boolean(r.enabled),
      forced: Boolean(r.forced),
      policy: ok ? 'ok' : r.has_policy ? 'different' : 'missing',
    } satisfies RlsTableStatus)
  })
}

/**
 * Puts each table under tenant isolation (ENABLE + FORCE ROW LEVEL SECURITY and
 * rowtenancy's policy), in one transaction. Idempotent: tables already in that
 * state are left alone and reported as unchanged.
 *
 * @example
 * ```ts
 * await enableRls(ownerPool, [{ name: 'accounts' }], { tenantIdType: 'bigint' })
 * ```
 */
export async function enableRls(
  db: Queryable,
  tables: readonly TableRef[],
  options: TenantPolicyOptions = {},
): Promise<RlsApplyResult> {
  return apply(
    db,
    tables,
    options,
    (s) => !(s.enabled && s.forced && s.policy === 'ok'),
    renderRlsEnable,
  )
}

/**
 * Takes each table out of tenant isolation (drops rowtenancy's policy, NO FORCE,
 * DISABLE ROW LEVEL SECURITY), in one transaction. Idempotent.
 *
 * @example
 * ```ts
 * await disableRls(ownerPool, [{ name: 'accounts' }])
 * ```
 */
export async function disableRls(
  db: Queryable,
  tables: readonly TableRef[],
  options: TenantPolicyOptions = {},
): Promise<RlsApplyResult> {
  return apply(
    db,
    tables,
    options,
    (s) => s.enabled || s.forced || s.policy !== 'missing',
    renderRlsDisable,
  )
}

/**
 * The shared body of enable / disable: reads the tables' state, refuses missing
 * tables, renders the statements for the tables that `needsChange`, and runs them
 * in one transaction.
 */
async function apply(
  db: Queryable,
  tables: readonly TableRef[],
  options: TenantPolicyOptions,
  needsChange: (status: RlsTableStatus) => boolean,
  render: (policy: RlsPolicy) => readonly string[],
): Promise<RlsApplyResult> {
  const named = await rlsStatus(db, tables, options)
  assertExisting(named)
  // A partition or an inheritance child named directly is a table of its own to row level
  // security: it needs its own policy, or its rows are every tenant's through its name.
  tables = await withDescendants(db, tables, new Set(named.map((n) => n.table)))
  const status = tables.length === named.length ? named : await rlsStatus(db, tables, options)
  const todo = tables.filter((_, i) => needsChange(status[i]!))
  const statements = todo.flatMap((t) => render(tenantPolicy(t, options)))
  await run(db, statements)
  return split(
    status,
    status.filter((_, i) => todo.includes(tables[i]!)),
    statements,
  )
}

/**
 * `tables` and, after them, every partition and inheritance child below them (at any depth)
 * not among `named` (the tables' own `schema.name`), in a stable order. A child is a table of
 * its own to row level security: a query naming it is under its policies, not its parent's.
 *
 * @internal
 */
export async function withDescendants(
  db: Queryable,
  tables: readonly TableRef[],
  named: ReadonlySet<string>,
): Promise<readonly TableRef[]> {
  const { rows } = await db.query(
    `with recursive below (oid) as (
       select i.inhrelid from pg_catalog.pg_inherits i
        where i.inhparent = any (select pg_catalog.to_regclass(t)::oid from unnest($1::text[]) t)
       union
       select i.inhrelid from pg_catalog.pg_inherits i join below on i.inhparent = below.oid)
     select n.nspname as schema, c.relname as name
       from below join pg_catalog.pg_class c on c.oid = below.oid
       join pg_catalog.pg_namespace n on n.oid = c.relnamespace
      where c.relkind in ('r', 'p')
      order by 1, 2`,
    [tables.map(renderTable)],
  )
  const more = (rows as { schema: string; name: string }[])
    .filter((r) => !named.has(`${r.schema}.${r.name}`))
    .map((r) => ({ schema: r.schema, name: r.name }))
  return more.length === 0 ? tables : [...tables, ...more]
}

/**
 * Throws `InvalidInputError` naming the tables of `status` that do not exist.
 *
 * @internal
 */
export function assertExisting(status: readonly RlsTableStatus[]): void {
  const missing = status.filter((s) => !s.exists).map((s) => s.table)
  if (missing.length > 0) {
    throw new InvalidInputError(
      `No such table: ${missing.join(', ')}. Check the table names (schema.table) in your config or flags.`,
    )
  }
}

async function run(db: Queryable, statements: readonly string[]): Promise<void> {
  if (statements.length === 0) return
  await inTransaction(db, async (tx) => {
    for (const statement of statements) await tx.query(statement)
  })
}

function split(
  all: readonly RlsTableStatus[],
  changed: readonly RlsTableStatus[],
  statements: readonly string[],
): RlsApplyResult {
  return Object.freeze({
    changed: changed.map((s) => s.table),
    unchanged: all.filter((s) => !changed.includes(s)).map((s) => s.table),
    statements,
  })
}
