import { MigrationError } from '../errors/index.js'
import type { Queryable } from '../sql/queryable.js'
import type { MigrationPlan } from './plan.js'

/**
 * What a migration into a Citus cluster must know before it writes, checked on
 * the database it runs on (nothing when Citus is not installed):
 *
 * - it runs on the coordinator: the ledger, the per-tenant advisory lock and the
 *   legacy schemas live there (advisory locks are per node; Citus does not
 *   spread them), so a run against a worker is refused;
 * - `session_replication_role` and `SET CONSTRAINTS ALL DEFERRED` act on the
 *   coordinator only: on the shards, foreign keys are checked per statement.
 *   Copying in foreign-key order covers every key but one that closes a cycle,
 *   which must be `DEFERRABLE INITIALLY DEFERRED` (as `schema generate` writes
 *   it), and a user trigger on a distributed table would fire for every copied
 *   row: both are refused by name;
 * - Citus writes `INSERT ... SELECT` from the coordinator into distributed
 *   tables with `COPY`, which row-level security refuses: a role the policies
 *   apply to (no `BYPASSRLS`) is refused up front, naming the tables;
 * - a tenant table that is still local is a warning: its rows stay on the
 *   coordinator until `rowtenancy citus distribute` runs.
 *
 * Returns the warnings; throws MigrationError for a refusal. Read-only.
 *
 * @example
 * ```ts
 * const warnings = await checkCitusTarget(client, plan)
 * ```
 */
export async function checkCitusTarget(db: Queryable, plan: MigrationPlan): Promise<string[]> {
  if (!(await assertCitusCoordinator(db))) return []
  const tables = [...plan.tables]
  const { rows } = await db.query(
    `select c.relname as table, p.partmethod::text as method,
            p.logicalrelid is not null and row_security_active(c.oid) as rls,
            coalesce((select json_agg(json_build_object('name', k.conname, 'ref', r.relname,
                        'deferred', k.condeferred) order by k.conname)
                        from pg_constraint k join pg_class r on r.oid = k.confrelid
                       where k.conrelid = c.oid and k.contype = 'f'
                         and r.relnamespace = c.relnamespace), '[]'::json) as fks
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
       left join pg_dist_partition p on p.logicalrelid = c.oid
      where n.nspname = $1 and c.relname = any($2::text[])`,
    [plan.targetSchema, tables],
  )
  const problems: string[] = []
  const warnings: string[] = []
  const policed = rows.filter((r) => r.rls === true).map((r) => r.table as string)
  if (policed.length > 0) {
    problems.push(
      `row-level security applies to this role on ${policed.map((t) => `${plan.targetSchema}.${t}`).join(', ')}, ` +
        'and Citus writes INSERT ... SELECT into distributed tables with COPY, which row-level security refuses ' +
        '(fix: run the migration as a role with BYPASSRLS, e.g. alter role <migration role> bypassrls, or as a superuser)',
    )
  }
  for (const r of rows) {
    if (r.method !== 'h') {
      warnings.push(
        `${plan.targetSchema}.${r.table} is not distributed: its rows stay on the coordinator. Run rowtenancy citus distribute first to spread tenants over the workers.`,
      )
      continue
    }
    for (const fk of r.fks as { name: string; ref: string; deferred: boolean }[]) {
      const later = tables.indexOf(fk.ref) > tables.indexOf(r.table)
      if (later && !fk.deferred) {
        problems.push(
          `foreign key ${JSON.stringify(fk.name)} on ${r.table} points at ${fk.ref}, which is copied later (a cycle), ` +
            'and is not DEFERRABLE INITIALLY DEFERRED: Citus checks it on the shard for each statement ' +
            `(fix: alter table ${plan.targetSchema}.${r.table} alter constraint ${JSON.stringify(fk.name)} deferrable initially deferred)`,
        )
      }
    }
    for (const trig of plan.targets.get(r.table)?.userTriggers ?? []) {
      problems.push(
        `trigger ${JSON.stringify(trig)} on the distributed table ${r.table} would fire on the shards for every copied row ` +
          '(session_replication_role does not reach the workers): drop it for the migration and recreate it after',
      )
    }
  }
  if (problems.length > 0) {
    throw new MigrationError(
      `Migrating into this Citus cluster would go wrong: ${problems.join('; ')}.`,
    )
  }
  return warnings
}

/**
 * On a Citus node, refuses (MigrationError) unless it is the coordinator;
 * returns whether Citus is installed. Run before anything is planned.
 *
 * @example
 * ```ts
 * const citus = await assertCitusCoordinator(client)
 * ```
 */
export async function assertCitusCoordinator(db: Queryable): Promise<boolean> {
  const installed = await db.query(
    `select exists (select 1 from pg_extension where extname = 'citus') as citus`,
  )
  if (installed.rows[0]?.citus !== true) return false
  const coordinator = await db.query('select citus_is_coordinator() as ok')
  if (coordinator.rows[0]?.ok !== true) {
    throw new MigrationError(
      'This database is a Citus worker: run the migration against the coordinator (the ledger, the per-tenant ' +
        'advisory locks and the legacy schemas live there; workers do not share advisory locks).',
    )
  }
  return true
}
