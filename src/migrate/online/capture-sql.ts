import { MigrationError } from '../../errors/index.js'
import { DEFAULTS } from '../../sql/defaults.js'
import { quoteIdent, quoteLiteral, quoteQualified } from '../../sql/quote.js'
import type { TenantIdType } from '../../tenants/id-types.js'
import { fenceKeySql, MOVED_SQLSTATE, SERVING_TABLE } from '../../tenants/serving.js'
import { ownRows, type SqlContext, type Statement, sourceExpression } from '../copy-sql.js'
import type { TablePlan } from '../plan.js'

/** The change log of an online migration: the keys written in legacy tables since the copy. */
export const CHANGELOG_TABLE = 'rowtenancy_changelog'
/** The trigger function that appends to it. */
export const CAPTURE_FUNCTION = 'rowtenancy_capture'
/** The trigger function that refuses TRUNCATE of a captured legacy table (its rows would not be logged). */
export const TRUNCATE_FUNCTION = 'rowtenancy_capture_truncate'
/** Prefix of the capture triggers on legacy tables. */
export const TRIGGER_PREFIX = 'rowtenancy_capture'

const OPS = [
  ['ins', 'insert', 'referencing new table as rt_new'],
  ['upd', 'update', 'referencing old table as rt_old new table as rt_new'],
  ['del', 'delete', 'referencing old table as rt_old'],
] as const

/**
 * The change log table and the capture function (statement-level, transition
 * tables): it takes the tenant's fence shared (a writer that does not go
 * through rowtenancy waits for a cut-over too), reads the placement under it,
 * refuses a write to a tenant cut over to the shared tables (`RTP01`; in a
 * transaction of one snapshot, a flip after it is a serialization failure,
 * `40001`), and appends the written keys. The cut-over leaves the triggers in
 * place, so they refuse every later write to the schema, one that waited on
 * the cut-over included; `rollback --online` removes them.
 * Legacy rows are never changed by it. Idempotent.
 *
 * @internal
 */
export function captureDdl(schema: string, idType: TenantIdType): string[] {
  const log = quoteQualified(schema, CHANGELOG_TABLE)
  const serving = quoteQualified(schema, SERVING_TABLE)
  return [
    `create or replace function ${quoteQualified(schema, TRUNCATE_FUNCTION)}() returns trigger
language plpgsql as $rt$
begin
  raise exception using errcode = '55000',
    message = 'TRUNCATE of ' || TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME || ' is refused while an online migration captures its changes or has cut its tenant over',
    hint = 'Delete the rows instead, or finish the online migration first (drop-schemas drops a cut-over schema).';
end
$rt$`,
    `create table if not exists ${log} (
  id bigserial primary key,
  tenant_id text not null,
  table_name text not null,
  key jsonb not null
)`,
    `create index if not exists rowtenancy_changelog_tenant on ${log} (tenant_id, table_name)`,
    `create or replace function ${quoteQualified(schema, CAPTURE_FUNCTION)}() returns trigger
language plpgsql security definer set search_path = pg_catalog, pg_temp as $rt$
declare
  v_tenant text := TG_ARGV[0];
  v_table text := coalesce(TG_ARGV[2], TG_TABLE_NAME);
  v_placement text;
begin
  perform pg_catalog.pg_advisory_xact_lock_shared(${fenceKeySql('v_tenant')});
  select s.placement into v_placement from ${serving} s where s.tenant_id = v_tenant::${idType};
  if pg_catalog.current_setting('transaction_isolation') <> 'read committed' then
    -- one snapshot for the whole transaction: a flip after it raises a serialization failure
    perform 1 from ${serving} s where s.tenant_id = v_tenant::${idType} for share;
  end if;
  if v_placement = 'shared' then
    raise exception using errcode = ${quoteLiteral(MOVED_SQLSTATE)},
      message = 'tenant ' || v_tenant || ' was cut over to the shared tables; its schema takes no more writes';
  end if;
  if TG_OP in ('INSERT', 'UPDATE') then
    execute pg_catalog.format('insert into ${log.replaceAll('%', '%%')} (tenant_id, table_name, key) select $1, $2, %s from rt_new r', TG_ARGV[1])
      using v_tenant, v_table;
  end if;
  if TG_OP in ('UPDATE', 'DELETE') then
    execute pg_catalog.format('insert into ${log.replaceAll('%', '%%')} (tenant_id, table_name, key) select $1, $2, %s from rt_old r', TG_ARGV[1])
      using v_tenant, v_table;
  end if;
  return null;
end
$rt$`,
  ]
}

/** The key columns of a table (its primary key); a table without one cannot be captured. */
export function keyColumns(t: TablePlan, tenantId: string): readonly string[] {
  if (t.source.primaryKey.length === 0) {
    throw new MigrationError(
      `Table ${t.name} of tenant ${tenantId} has no primary key: an online migration logs changed rows by key. ` +
        'Add a primary key to the legacy table, or migrate this tenant offline.',
    )
  }
  return t.source.primaryKey
}

/**
 * The statements that install the capture triggers on one legacy table
 * (insert, update, delete; a TRUNCATE is refused), each `create or replace`.
 *
 * @internal
 */
export function installTriggerSql(
  schema: string,
  ctx: SqlContext,
  t: TablePlan,
  keys: readonly string[],
): string[] {
  const table = quoteQualified(ctx.sourceSchema, t.name)
  const fn = quoteQualified(schema, CAPTURE_FUNCTION)
  const keyExpr = `jsonb_build_array(${keys.map((k) => `r.${quoteIdent(k)}`).join(', ')})`
  // On a partition, the log still names the partitioned table the catch-up reads.
  // `esc` doubles `%` in what is interpolated when the text is a format() template.
  const triggers = (on: string, logAs: string, esc = (x: string) => x) => [
    ...OPS.map(
      ([suffix, op, referencing]) =>
        `create or replace trigger ${quoteIdent(`${TRIGGER_PREFIX}_${suffix}`)} after ${op} on ${on} ` +
        `${referencing} for each statement execute function ${esc(fn)}(${esc(quoteLiteral(ctx.tenantId))}, ${esc(quoteLiteral(keyExpr))}${esc(logAs)})`,
    ),
    `create or replace trigger ${quoteIdent(`${TRIGGER_PREFIX}_trn`)} before truncate on ${on} ` +
      `for each statement execute function ${esc(quoteQualified(schema, TRUNCATE_FUNCTION))}()`,
  ]
  const own = triggers(table, '')
  if (!t.source.partitioned) return own
  // A statement that names a partition fires only that partition's statement triggers.
  return [...own, onPartitions(table, triggers('%s', `, ${quoteLiteral(t.name)}`, formatSafe))]
}

const formatSafe = (x: string) => x.replaceAll('%', '%%')

/**
 * A DO block running each format() template of `statements` (`%s` the
 * partition, every other `%` doubled) on every partition below `table`.
 */
function onPartitions(table: string, statements: readonly string[]): string {
  const each = statements
    .map((s) => `    execute pg_catalog.format(${quoteLiteral(s)}, r);`)
    .join('\n')
  const body = `
declare
  r regclass;
begin
  for r in select p.relid from pg_catalog.pg_partition_tree(${quoteLiteral(table)}::regclass) p
            where p.relid operator(pg_catalog.<>) ${quoteLiteral(table)}::regclass loop
${each}
  end loop;
end
`
  let tag = '$rt$'
  for (let i = 1; body.includes(tag); i++) tag = `$rt${i}$`
  return `do ${tag}${body}${tag}`
}

/** The statements that remove the capture triggers of one legacy table. @internal */
export function dropTriggerSql(ctx: SqlContext, t: TablePlan): string[] {
  const table = quoteQualified(ctx.sourceSchema, t.name)
  const drops = (on: string) =>
    [...OPS.map(([suffix]) => suffix), 'trn'].map(
      (suffix) => `drop trigger if exists ${quoteIdent(`${TRIGGER_PREFIX}_${suffix}`)} on ${on}`,
    )
  const own = drops(table)
  return t.source.partitioned ? [...own, onPartitions(table, drops('%s'))] : own
}

/** The logged keys of one table as typed columns k0..kn (`$1` the tenant, `$2` the table). */
function loggedKeys(schema: string, t: TablePlan, keys: readonly string[]): string {
  const cols = keys.map((k, i) => {
    const type = t.source.columns.find((c) => c.name === k)?.type ?? 'text'
    return `(c.key->>${i})::${type} as k${i}`
  })
  return (
    `select distinct ${cols.join(', ')} from ${quoteQualified(schema, CHANGELOG_TABLE)} c ` +
    'where c.tenant_id = $1::text and c.table_name = $2'
  )
}

/**
 * Brings the logged rows of one table to their legacy state in the shared table:
 * `INSERT ... SELECT` of the logged keys still present in the legacy table,
 * `ON CONFLICT (tenant_id, key) DO UPDATE` (the copy's expressions and casts).
 *
 * @internal
 */
export function upsertLoggedSql(
  schema: string,
  ctx: SqlContext,
  t: TablePlan,
  keys: readonly string[],
): Statement {
  const values: unknown[] = [ctx.tenantId]
  const exprs = t.insertColumns.map((c) => sourceExpression(ctx, t, c, values))
  if (values.length !== 1) {
    throw new MigrationError('An online migration supports the composite id strategy only.')
  }
  values.push(t.name)
  const tc = quoteIdent(ctx.tenantColumn ?? DEFAULTS.tenantColumn)
  const cols = [tc, ...t.insertColumns.map(quoteIdent)].join(', ')
  const overriding = t.overriding ? ' overriding system value' : ''
  const match = `(${keys.map((k) => `s.${quoteIdent(k)}`).join(', ')}) in (select ${keys.map((_k, i) => `k${i}`).join(', ')} from (${loggedKeys(schema, t, keys)}) lk)`
  const rest = t.insertColumns.filter((c) => !keys.includes(c))
  const action =
    rest.length === 0
      ? 'do nothing'
      : `do update set ${rest.map((c) => `${quoteIdent(c)} = excluded.${quoteIdent(c)}`).join(', ')}`
  return {
    text:
      `insert into ${quoteQualified(ctx.targetSchema, t.name)} (${cols})${overriding} ` +
      `select $1::${ctx.idType}, ${exprs.join(', ')} from ${t.source.partitioned ? '' : 'only '}${quoteQualified(ctx.sourceSchema, t.name)} s ` +
      `where ${match} on conflict (${[tc, ...keys.map(quoteIdent)].join(', ')}) ${action}`,
    values,
  }
}

/**
 * Deletes from the shared table the logged rows that the legacy table no longer has.
 *
 * @internal
 */
export function deleteLoggedSql(
  schema: string,
  ctx: SqlContext,
  t: TablePlan,
  keys: readonly string[],
): Statement {
  const tc = quoteIdent(ctx.tenantColumn ?? DEFAULTS.tenantColumn)
  const same = keys.map((k) => `s.${quoteIdent(k)} = x.${quoteIdent(k)}`).join(' and ')
  return {
    text:
      `delete from ${ownRows(ctx.targetSchema, t.target, 'x')} where x.${tc} = $1::${ctx.idType} ` +
      `and (${keys.map((k) => `x.${quoteIdent(k)}`).join(', ')}) in (select ${keys.map((_k, i) => `k${i}`).join(', ')} from (${loggedKeys(schema, t, keys)}) lk) ` +
      `and not exists (select 1 from ${t.source.partitioned ? '' : 'only '}${quoteQualified(ctx.sourceSchema, t.name)} s where ${same})`,
    values: [ctx.tenantId, t.name],
  }
}

/**
 * Count and checksum (as `sourceChecksumStatement` / `targetChecksumStatement`
 * compute them) of the logged rows only, on one side: the part of a tenant that
 * changed since the last full verification.
 *
 * @internal
 */
export function loggedChecksumSql(
  schema: string,
  full: Statement,
  alias: 's' | 't',
  t: TablePlan,
  keys: readonly string[],
): Statement {
  const match = `(${keys.map((k) => `${alias}.${quoteIdent(k)}`).join(', ')}) in (select ${keys.map((_k, i) => `k${i}`).join(', ')} from (${loggedKeys(schema, t, keys)}) lk)`
  if (full.values.length !== 1) {
    throw new MigrationError('An online migration supports the composite id strategy only.')
  }
  return { text: `${full.text} and ${match}`, values: [...full.values, t.name] }
}
