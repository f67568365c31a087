import { ConfigError } from '../errors/index.js'
import { DEFAULTS } from '../sql/defaults.js'
import type { Queryable } from '../sql/queryable.js'
import { quoteIdent, quoteLiteral, quoteQualified } from '../sql/quote.js'
import { type CitusTable, citusInstalled, type ForeignKey, loadCitusTables } from './catalog.js'

/**
 * Options of {@link planDistribution} and `distribute`.
 */
export interface DistributeOptions {
  /** Schema of the shared tables; `public` by default. */
  readonly schema?: string | undefined
  /** Schema of `tenants` and `tenant_domains`; `public` by default. */
  readonly tenantsSchema?: string | undefined
  /** The tenant (distribution) column; `tenant_id` by default. */
  readonly tenantColumn?: string | undefined
  /** Tables without the tenant column to leave as local tables (`schema.table` or `table`). */
  readonly keepLocal?: readonly string[] | undefined
}

/**
 * One step of the plan, in the order it runs.
 * - `reference`: `create_reference_table` (a copy on every node);
 * - `distribute`: `create_distributed_table` by the tenant column, co-located;
 * - `colocate`: an already distributed tenant table moved into the tenant group;
 * - `done`: already as planned (a rerun changes nothing);
 * - `local`: stays a local table on the coordinator, with the reason;
 * - `foreign-key`: a foreign key between tenant tables dropped before and added
 *   back after (Citus cannot distribute a parent a Citus local table references).
 */
export interface DistributeStep {
  readonly table: string
  /** The table as SQL (`"schema"."name"`). */
  readonly quoted: string
  readonly action: 'reference' | 'distribute' | 'colocate' | 'done' | 'local' | 'foreign-key'
  readonly reason: string
  /** The statements the step runs (none for `done` and `local`). */
  readonly sql: readonly string[]
}

/**
 * Why a table cannot be distributed as it stands: the exact constraint (or
 * policy) and the fix.
 */
export interface DistributeRefusal {
  readonly table: string
  readonly object: string
  readonly problem: string
  readonly fix: string
}

/**
 * What `citus distribute` would do: steps in foreign-key order (reference
 * tables first, then the tenant tables, parents before children), and the
 * refusals that stop it. Nothing runs while `refusals` is not empty.
 *
 * @example
 * ```ts
 * const plan = await planDistribution(pool)
 * if (plan.refusals.length === 0) await applyDistribution(pool, plan)
 * ```
 */
export interface DistributionPlan {
  readonly tenantColumn: string
  readonly steps: readonly DistributeStep[]
  readonly refusals: readonly DistributeRefusal[]
}

/** rowtenancy's own bookkeeping tables, which stay on the coordinator. */
function isInternal(t: CitusTable): boolean {
  return t.name.startsWith('rowtenancy_') || t.name === 'audit_log'
}

/**
 * Reads the database and plans its distribution (read-only).
 *
 * Tenant-aware tables (with the tenant column) are distributed by it and
 * co-located; `tenants`, `tenant_domains` and every other table of the schema
 * become reference tables, except rowtenancy's bookkeeping (`rowtenancy_*`,
 * `audit_log`), a legacy tenants registry (a table with a `schema_name` column,
 * and the tables referencing it), and `keepLocal`.
 *
 * @example
 * ```ts
 * const plan = await planDistribution(pool, { schema: 'public' })
 * for (const s of plan.steps) console.log(s.action, s.table)
 * ```
 */
export async function planDistribution(
  db: Queryable,
  options: DistributeOptions = {},
): Promise<DistributionPlan> {
  const column = options.tenantColumn ?? DEFAULTS.tenantColumn
  const schema = options.schema ?? DEFAULTS.schema
  const tenantsSchema = options.tenantsSchema ?? DEFAULTS.schema
  if (!(await citusInstalled(db))) {
    throw new ConfigError(
      'The citus extension is not installed in this database: run `create extension citus` and register the ' +
        "nodes (select citus_set_coordinator_host(...); select citus_add_node('worker', 5432)) first.",
    )
  }
  const all = await loadCitusTables(db, [...new Set([schema, tenantsSchema])], column)
  const byName = new Map(all.map((t) => [t.qualified, t]))
  const keepLocal = new Set(
    (options.keepLocal ?? []).map((n) => (n.includes('.') ? n : `${schema}.${n}`)),
  )
  for (const k of keepLocal) {
    if (!byName.has(k)) throw new ConfigError(`--keep-local names ${k}, which is not a table here.`)
  }
  const { role, localReason } = tableRoles(all, { schema, tenantsSchema, column, keepLocal })
  const refusals = [...checkTables(all, role, column)]
  const references = foreignKeyOrder(all.filter((t) => role.get(t.qualified) === 'reference'))
  const tenants = foreignKeyOrder(all.filter((t) => role.get(t.qualified) === 'tenant'))
  const tenantTables = tenants.order
  const relinked = relinkedKeys(byName, tenantTables, [...references.cycles, ...tenants.cycles])
  const anchor =
    tenantTables.find(
      (t) => t.distribution.kind === 'distributed' && t.distribution.column === column,
    ) ?? tenantTables[0]
  const steps: DistributeStep[] = [
    ...relinked.map((fk) => foreignKeyStep(byName, fk, 'drop')),
    ...references.order.map(referenceStep),
    ...tenantTables.map((t) => distributeStep(t, column, anchor!)),
    ...relinked.map((fk) => foreignKeyStep(byName, fk, 'add')),
    ...all
      .filter((t) => role.get(t.qualified) === 'local')
      .map(
        (t): DistributeStep => ({
          table: t.qualified,
          quoted: t.quoted,
          action: 'local',
          reason: localReason.get(t.qualified)!,
          sql: [],
        }),
      ),
  ]
  return { tenantColumn: column, steps, refusals }
}

type TableRole = 'tenant' | 'reference' | 'local'

/**
 * What becomes of each table: rowtenancy's tenants tables and shared tables become
 * reference tables, tenant tables are distributed, and bookkeeping, `keepLocal` and
 * legacy registries stay local (with the reason).
 */
function tableRoles(
  all: readonly CitusTable[],
  o: { schema: string; tenantsSchema: string; column: string; keepLocal: ReadonlySet<string> },
): { role: Map<string, TableRole>; localReason: Map<string, string> } {
  const tenantsTable = `${o.tenantsSchema}.tenants`
  // As discoverTenantTables: a tenant column that references some other table alone, not
  // tenants too (a legacy django-tenants customers_domain.tenant_id -> customers_client), is not ours.
  const isTenantTable = (t: CitusTable) => {
    const keys = t.foreignKeys.filter((fk) => fk.columns.length === 1 && fk.columns[0] === o.column)
    const intoTenants = keys.some((fk) => fk.references === tenantsTable)
    return t.hasTenantColumn && (intoTenants || keys.length === 0)
  }
  const isRegistry = (t: CitusTable) => t.columns.includes('schema_name') && !isTenantTable(t)
  const registries = new Set(all.filter(isRegistry).map((t) => t.qualified))
  const role = new Map<string, TableRole>()
  const localReason = new Map<string, string>()
  for (const t of all) {
    const own =
      t.schema === o.tenantsSchema && (t.name === 'tenants' || t.name === 'tenant_domains')
    if (own) role.set(t.qualified, 'reference')
    else if (t.schema !== o.schema) continue
    else if (isInternal(t)) {
      role.set(t.qualified, 'local')
      localReason.set(t.qualified, "rowtenancy's bookkeeping, read on the coordinator")
    } else if (o.keepLocal.has(t.qualified)) {
      role.set(t.qualified, 'local')
      localReason.set(t.qualified, '--keep-local')
    } else if (
      registries.has(t.qualified) ||
      (!isTenantTable(t) && t.foreignKeys.some((fk) => registries.has(fk.references)))
    ) {
      role.set(t.qualified, 'local')
      localReason.set(t.qualified, 'legacy tenant registry (schema_name), read by the migration')
    } else role.set(t.qualified, isTenantTable(t) ? 'tenant' : 'reference')
  }
  return { role, localReason }
}

/**
 * The keys dropped before and added back after: a key closing a cycle (Citus
 * distributes a parent before its child), and a key from a Citus local table (a
 * parent it references cannot be distributed).
 */
function relinkedKeys(
  byName: ReadonlyMap<string, CitusTable>,
  tenantTables: readonly CitusTable[],
  cycles: readonly ForeignKey[],
): ForeignKey[] {
  const names = new Set(tenantTables.map((t) => t.qualified))
  const relinked = new Map<string, ForeignKey>()
  const pending = (t: CitusTable) =>
    t.distribution.kind === 'local' || t.distribution.kind === 'citus-local'
  for (const fk of cycles) {
    if (pending(byName.get(fk.table)!) || pending(byName.get(fk.references)!))
      relinked.set(`${fk.table} ${fk.name}`, fk)
  }
  for (const t of tenantTables) {
    if (t.distribution.kind !== 'citus-local') continue
    for (const fk of t.foreignKeys) {
      if (names.has(fk.references) && fk.references !== t.qualified)
        relinked.set(`${fk.table} ${fk.name}`, fk)
    }
  }
  return [...relinked.values()]
}

function foreignKeyStep(
  byName: ReadonlyMap<string, CitusTable>,
  fk: ForeignKey,
  op: 'drop' | 'add',
): DistributeStep {
  const quoted = byName.get(fk.table)!.quoted
  return op === 'drop'
    ? {
        table: fk.table,
        quoted,
        action: 'foreign-key',
        reason: `drop ${fk.name} (to ${fk.references}) until both sides are distributed`,
        sql: [`alter table ${quoted} drop constraint ${quoteIdent(fk.name)}`],
      }
    : {
        table: fk.table,
        quoted,
        action: 'foreign-key',
        reason: `add ${fk.name} back, between co-located tables`,
        sql: [`alter table ${quoted} add constraint ${quoteIdent(fk.name)} ${fk.definition}`],
      }
}

function referenceStep(t: CitusTable): DistributeStep {
  if (t.distribution.kind === 'reference') {
    return {
      table: t.qualified,
      quoted: t.quoted,
      action: 'done',
      reason: 'already a reference table',
      sql: [],
    }
  }
  const lit = quoteLiteral(t.quoted)
  return {
    table: t.qualified,
    quoted: t.quoted,
    action: 'reference',
    reason: 'shared (no tenant column): a copy on every node',
    sql: [`select create_reference_table(${lit})`],
  }
}

function distributeStep(t: CitusTable, column: string, anchor: CitusTable): DistributeStep {
  const lit = quoteLiteral(t.quoted)
  const anchorDistributed = anchor.distribution.kind === 'distributed'
  if (t.distribution.kind === 'distributed') {
    if (
      t === anchor ||
      (anchor.distribution.kind === 'distributed' &&
        anchor.distribution.colocationId === t.distribution.colocationId)
    ) {
      return {
        table: t.qualified,
        quoted: t.quoted,
        action: 'done',
        reason: `already distributed by ${column}, co-located`,
        sql: [],
      }
    }
    return {
      table: t.qualified,
      quoted: t.quoted,
      action: 'colocate',
      reason: `distributed by ${column} but not co-located with ${anchor.qualified}`,
      sql: [
        `select update_distributed_table_colocation(${lit}, colocate_with => ${quoteLiteral(anchor.quoted)})`,
      ],
    }
  }
  const colocate = t === anchor && !anchorDistributed ? "'default'" : quoteLiteral(anchor.quoted)
  return {
    table: t.qualified,
    quoted: t.quoted,
    action: 'distribute',
    reason: `tenant-aware: sharded by ${column}, co-located with ${t === anchor ? 'the tenant tables' : anchor.qualified}`,
    sql: [
      `select create_distributed_table(${lit}, ${quoteLiteral(column)}, colocate_with => ${colocate})`,
    ],
  }
}

/**
 * The statement that removes the coordinator's hidden copy of rows Citus moved
 * to the shards. Run only once every table is distributed: on a referenced
 * table it cascades to the referencing tables' local rows.
 *
 * @internal
 */
export function truncateLocalSql(table: string): string {
  return `select truncate_local_data_after_distributing_table(${quoteLiteral(table)})`
}

/** Each refusal: a key without the tenant column, a foreign key Citus cannot keep, a sub-select policy. */
function* checkTables(
  all: readonly CitusTable[],
  role: ReadonlyMap<string, TableRole>,
  column: string,
): Generator<DistributeRefusal> {
  for (const t of all) {
    const r = role.get(t.qualified)
    if (r === 'tenant') yield* tenantTableRefusals(t, column)
    if (r === 'tenant' || r === 'reference') yield* distributedObjectRefusals(t, r, column)
    for (const fk of t.foreignKeys) yield* foreignKeyRefusals(t, fk, r, role, column)
  }
}

/** A tenant table distributed by another column or as a reference table; keys without the tenant column. */
function* tenantTableRefusals(t: CitusTable, column: string): Generator<DistributeRefusal> {
  if (t.distribution.kind === 'distributed' && t.distribution.column !== column) {
    yield {
      table: t.qualified,
      object: t.qualified,
      problem: `is already distributed by ${t.distribution.column ?? '(none)'}, not ${column}`,
      fix: `select alter_distributed_table(${quoteLiteral(t.quoted)}, distribution_column => ${quoteLiteral(column)})`,
    }
  }
  if (t.distribution.kind === 'reference') {
    yield {
      table: t.qualified,
      object: t.qualified,
      problem: 'has the tenant column but is a reference table',
      fix: `select undistribute_table(${quoteLiteral(t.quoted)}), then rerun rowtenancy citus distribute`,
    }
  }
  for (const k of t.keys) {
    if (!k.columns.includes(column)) {
      yield {
        table: t.qualified,
        object: k.name,
        problem: `${k.kind} (${k.columns.join(', ')}) does not include ${column}: Citus can only enforce keys that hold the distribution column`,
        fix:
          k.kind === 'unique index'
            ? `drop index ${quoteQualified(t.schema, k.name)}; create unique index on ${t.quoted} (${column}, ${k.columns.join(', ')})`
            : `alter table ${t.quoted} drop constraint "${k.name}", add ${k.kind} (${column}, ${k.columns.join(', ')}) (rowtenancy schema generate writes tenant-first keys)`,
      }
    }
  }
}

/** Triggers of a table still to distribute, sub-select policies of a table to distribute or a reference table. */
function* distributedObjectRefusals(
  t: CitusTable,
  r: 'tenant' | 'reference',
  column: string,
): Generator<DistributeRefusal> {
  if (t.distribution.kind !== r.replace('tenant', 'distributed')) {
    for (const g of t.triggers) {
      yield {
        table: t.qualified,
        object: `trigger ${g}`,
        problem:
          'Citus does not distribute a table with triggers (they would run on each shard, per shard)',
        fix: `drop trigger ${quoteIdent(g)} on ${t.quoted} (recreate its logic in the app), or set citus.enable_unsafe_triggers = on for the cluster if it is shard-safe`,
      }
    }
  }
  for (const p of t.subSelectPolicies) {
    yield {
      table: t.qualified,
      object: `policy ${p}`,
      problem:
        'has a sub-select ((select ...)) in its expression: Citus refuses such policies on distributed tables',
      fix: `recreate it without the sub-select, e.g. rowtenancy rls enable (${column} = nullif(current_setting('rowtenancy.tenant_id', true), '')::<type>)`,
    }
  }
}

/** A foreign key Citus cannot keep between the roles of its two tables. */
function* foreignKeyRefusals(
  t: CitusTable,
  fk: CitusTable['foreignKeys'][number],
  r: TableRole | undefined,
  role: ReadonlyMap<string, TableRole>,
  column: string,
): Generator<DistributeRefusal> {
  const target = role.get(fk.references)
  if (r === 'tenant') {
    if (target === 'tenant') yield* colocatedKeyRefusals(t, fk, column)
    else if (target !== 'reference') {
      yield {
        table: t.qualified,
        object: fk.name,
        problem: `references ${fk.references}, which stays a local table: a distributed table may reference only co-located or reference tables`,
        fix: `make ${fk.references} a shared table of this schema (it then becomes a reference table), or drop the foreign key`,
      }
    }
  } else if (r === 'reference' && target !== 'reference' && fk.references !== t.qualified) {
    yield {
      table: t.qualified,
      object: fk.name,
      problem: `a shared table references ${fk.references} (${target ?? 'another schema'}): a reference table may reference only reference tables`,
      fix: `drop the foreign key, or pass --keep-local ${t.qualified}`,
    }
  }
}

/** A foreign key between two tenant tables: its actions on the tenant column, the column's position. */
function* colocatedKeyRefusals(
  t: CitusTable,
  fk: CitusTable['foreignKeys'][number],
  column: string,
): Generator<DistributeRefusal> {
  const a = fk.columns.indexOf(column)
  const b = fk.referencedColumns.indexOf(column)
  const setsNull = fk.onDelete === 'n' || fk.onDelete === 'd'
  const updates = fk.onUpdate === 'n' || fk.onUpdate === 'd' || fk.onUpdate === 'c'
  if (a >= 0 && (setsNull || updates)) {
    const def = fk.definition
      .replace(/ ON DELETE SET (NULL|DEFAULT)( \([^)]*\))?/, '')
      .replace(/ ON UPDATE (SET NULL|SET DEFAULT|CASCADE)( \([^)]*\))?/, '')
    yield {
      table: t.qualified,
      object: fk.name,
      problem: `${setsNull ? 'ON DELETE SET NULL/SET DEFAULT' : 'ON UPDATE SET NULL/SET DEFAULT/CASCADE'} on a foreign key that holds ${column}: Citus does not support it between distributed tables (even with a column list)`,
      fix: `alter table ${t.quoted} drop constraint ${quoteIdent(fk.name)}, add constraint ${quoteIdent(fk.name)} ${def} (then clear ${fk.columns.filter((c) => c !== column).join(', ')} in the app before deleting the parent)`,
    }
  }
  if (a < 0 || a !== b) {
    yield {
      table: t.qualified,
      object: fk.name,
      problem: `foreign key (${fk.columns.join(', ')}) -> ${fk.references} (${fk.referencedColumns.join(', ')}) does not carry ${column} at the same position on both sides`,
      fix: `alter table ${t.quoted} drop constraint "${fk.name}", add foreign key (${column}, ${fk.columns.filter((c) => c !== column).join(', ')}) references ${fk.references} (${column}, ${fk.referencedColumns.filter((c) => c !== column).join(', ')})`,
    }
  }
}

/**
 * Parents before children. A foreign key that closes a cycle is returned apart
 * (it is dropped before and added back after the distribution). @internal
 */
function foreignKeyOrder(tables: readonly CitusTable[]): {
  order: CitusTable[]
  cycles: ForeignKey[]
} {
  const names = new Set(tables.map((t) => t.qualified))
  const order: CitusTable[] = []
  const cycles: ForeignKey[] = []
  const state = new Map<string, 'visiting' | 'done'>()
  const byName = new Map(tables.map((t) => [t.qualified, t]))
  const visit = (t: CitusTable): void => {
    if (state.get(t.qualified) === 'done') return
    state.set(t.qualified, 'visiting')
    for (const fk of t.foreignKeys) {
      if (fk.references === t.qualified || !names.has(fk.references)) continue
      if (state.get(fk.references) === 'visiting') cycles.push(fk)
      else visit(byName.get(fk.references)!)
    }
    state.set(t.qualified, 'done')
    order.push(t)
  }
  for (const t of tables) visit(t)
  return { order, cycles }
}
