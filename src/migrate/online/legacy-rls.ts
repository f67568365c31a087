import { MigrationError } from '../../errors/index.js'
import type { Queryable } from '../../sql/queryable.js'
import { quoteIdent, quoteLiteral } from '../../sql/quote.js'
import { searchPathNames } from '../../sql/search-path-names.js'
import { LEGACY_SETTING } from '../../tenants/serving.js'
import { lockTables, TablesChangedError } from './table-locks.js'

/** The policy an online migration puts on every legacy table while hybrid serving runs. */
export const LEGACY_POLICY = 'rowtenancy_legacy'

/** A legacy table (or partition) as the legacy policy sees it. @internal */
export interface LegacyTable {
  name: string
  rls: boolean
  ours: boolean
  foreign: boolean
  ownedByRuntime: boolean
}

/**
 * The tables of legacy schema `schema` (and every partition below them,
 * wherever it lives) as the legacy policy sees them; refuses (MigrationError) a
 * table with row level security or policies of its own, and a `runtimeRole`
 * that owns a legacy table (RLS does not bind an owner). Reads only: takes no
 * lock a served table would notice.
 *
 * @internal
 */
export async function inspectLegacySchema(
  db: Queryable,
  schema: string,
  runtimeRole: string | undefined,
): Promise<readonly LegacyTable[]> {
  const { rows } = await db.query(
    `with base as (
       select c.oid from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
        where n.nspname = $1 and c.relkind in ('r', 'p'))
     select distinct t.oid::regclass::text as name, t.relrowsecurity as rls,
       exists (select 1 from pg_catalog.pg_policy p where p.polrelid = t.oid and p.polname = $2) as ours,
       exists (select 1 from pg_catalog.pg_policy p where p.polrelid = t.oid and p.polname <> $2) as foreign,
       coalesce($3::text is not null and pg_catalog.pg_has_role($3::text, t.relowner, 'USAGE'), false) as "ownedByRuntime"
     from (select b.oid from base b
           union select pt.relid from base b cross join lateral pg_catalog.pg_partition_tree(b.oid) pt) r
     join pg_catalog.pg_class t on t.oid = r.oid
     where t.relkind in ('r', 'p')`,
    [schema, LEGACY_POLICY, runtimeRole ?? null],
  )
  const tables = rows as LegacyTable[]
  for (const t of tables) {
    if (t.ownedByRuntime) {
      throw new MigrationError(
        `--grant-to ${JSON.stringify(runtimeRole)} owns legacy table ${t.name} (or is a member of its owner): ` +
          'row level security does not bind a table owner, so that role could read every tenant of that schema ' +
          'while serving. Serve with a runtime role that owns no legacy table (rowtenancy init --runtime-role).',
      )
    }
    if (t.foreign || (t.rls && !t.ours)) {
      throw new MigrationError(
        `Legacy table ${t.name} already has row level security or policies of its own; an online migration ` +
          `adds its own policy ${LEGACY_POLICY} and does not combine with yours. Disable them for the migration ` +
          '(alter table ... disable row level security; drop policy ...) or migrate offline.',
      )
    }
  }
  return tables
}

/**
 * Row level security on every table of legacy schema `schema` (and every
 * partition below them, wherever it lives): a policy `rowtenancy_legacy` that
 * shows and accepts rows only in a transaction `rowtenancy_enter` bound to this
 * schema. RLS is enabled, not forced: the table owner (the old app's role when
 * it owns its schemas) and the migration keep reading everything. No row is
 * changed. Idempotent: a schema whose tables all have the policy takes no lock.
 * Otherwise the tables still without it are locked up front, in name order
 * with a short wait in all ({@link lockTables}: `TablesBusyError` when the app holds
 * them; roll back and retry), and looked at again under the lock. Refuses
 * (MigrationError, nothing changed) as {@link inspectLegacySchema} does. Run
 * inside the caller's transaction.
 *
 * @internal
 */
export async function guardLegacySchema(
  db: Queryable,
  schema: string,
  runtimeRole: string | undefined,
): Promise<void> {
  const unguarded = (await inspectLegacySchema(db, schema, runtimeRole)).filter((t) => !t.ours)
  if (unguarded.length === 0) return
  const locked = new Set(unguarded.map((t) => t.name))
  await lockTables(db, [...locked], 'access exclusive')
  // Under the lock: another run may have guarded them meanwhile, or a table appeared.
  const todo = (await inspectLegacySchema(db, schema, runtimeRole)).filter((t) => !t.ours)
  const appeared = todo.find((t) => !locked.has(t.name))
  if (appeared) throw new TablesChangedError(`legacy table ${appeared.name} appeared while locking`)
  const bound = `pg_catalog.current_setting(${quoteLiteral(LEGACY_SETTING)}, true) operator(pg_catalog.=) ${quoteLiteral(schema)}`
  for (const t of todo) {
    await db.query(`alter table ${t.name} enable row level security`)
    await db.query(
      `create policy ${quoteIdent(LEGACY_POLICY)} on ${t.name} as permissive for all using (${bound}) with check (${bound})`,
    )
  }
}

/**
 * Refuses (MigrationError) a legacy schema list the runtime role could reach
 * without `rowtenancy_enter`: a legacy schema named like `runtimeRole` (the
 * default `"$user"` search_path element), or a database or role default
 * search_path naming a legacy schema.
 *
 * @internal
 */
export async function assertNoDefaultPath(
  db: Queryable,
  schemas: readonly string[],
  runtimeRole: string | undefined,
): Promise<void> {
  const legacy = new Set(schemas)
  if (runtimeRole !== undefined && legacy.has(runtimeRole)) {
    throw new MigrationError(
      `Legacy schema ${JSON.stringify(runtimeRole)} is named like the --grant-to role: the default search_path ` +
        '("$user", public) would put it in front of every statement the runtime role runs. Serve with a ' +
        'runtime role of another name, or rename the schema (alter schema ... rename to ...) before migrating.',
    )
  }
  const { rows } = await db.query(
    `select coalesce(r.rolname, '') as role, s.setconfig
       from pg_catalog.pg_db_role_setting s left join pg_catalog.pg_roles r on r.oid = s.setrole
      where (s.setdatabase = 0 or s.setdatabase = (select oid from pg_catalog.pg_database where datname = current_database()))
        and (s.setrole = 0 or r.rolname = $1::text)`,
    [runtimeRole ?? null],
  )
  for (const row of rows as { role: string; setconfig: string[] }[]) {
    for (const entry of row.setconfig ?? []) {
      if (!entry.toLowerCase().startsWith('search_path=')) continue
      const hit = searchPathNames(entry.slice('search_path='.length)).find(
        (n) =>
          legacy.has(n) || (n === '$user' && runtimeRole !== undefined && legacy.has(runtimeRole)),
      )
      if (hit !== undefined) {
        const where = row.role ? `role ${JSON.stringify(row.role)}` : 'the database'
        throw new MigrationError(
          `The default search_path of ${where} names legacy schema ${JSON.stringify(hit)}: raw SQL outside ` +
            'rowtenancy_enter would read it. Reset it first (alter role/database ... reset search_path) and rerun.',
        )
      }
    }
  }
}
