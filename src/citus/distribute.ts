import { MigrationError } from '../errors/index.js'
import type { Queryable } from '../sql/queryable.js'
import {
  type DistributeOptions,
  type DistributeStep,
  type DistributionPlan,
  planDistribution,
  truncateLocalSql,
} from './plan.js'

/**
 * What {@link distribute} did: the plan it ran and the tables it changed.
 *
 * @example
 * ```ts
 * const { changed } = await distribute(pool) // ['public.tenants', 'public.accounts', ...]
 * ```
 */
export interface DistributeResult {
  readonly plan: DistributionPlan
  readonly changed: readonly string[]
  /**
   * Tables whose coordinator copy of the moved rows was kept (hidden, on disk
   * only) because a local table references them, e.g. a legacy tenant schema.
   */
  readonly keptLocalCopy: readonly string[]
}

type Session = Queryable & { release?: (destroy?: boolean) => void }

/**
 * Plans and runs the distribution of a row-level database on Citus (see
 * `planDistribution`): reference tables first, then every tenant-aware table
 * by the tenant column, co-located, parents before children. Citus keeps the
 * RLS policies and copies the rows to the shards; the coordinator's hidden
 * copy is truncated only after every table is done. Refuses (MigrationError,
 * nothing changed) while the plan has refusals; a rerun skips what is done.
 *
 * All of it is one transaction (all or nothing; a crash leaves the database as
 * it was), in Citus' sequential mode (DDL on reference tables and shards in one
 * transaction needs it), with `citus.enable_local_reference_table_foreign_keys`
 * off: otherwise turning `tenants` into a reference table would first turn
 * every table referencing it into a Citus local table, which Citus cannot
 * distribute when it has an identity column.
 *
 * @example
 * ```ts
 * await distribute(ownerPool, { schema: 'public' })
 * ```
 */
export async function distribute(
  db: Queryable,
  options: DistributeOptions = {},
): Promise<DistributeResult> {
  const plan = await planDistribution(db, options)
  if (plan.refusals.length > 0) {
    throw new MigrationError(
      `citus distribute refused, nothing changed:\n${plan.refusals
        .map((r) => `  ${r.table}: ${r.object} ${r.problem}\n    fix: ${r.fix}`)
        .join('\n')}`,
    )
  }
  const session: Session =
    'connect' in db && typeof db.connect === 'function'
      ? ((await (db as { connect(): Promise<Session> }).connect()) as Session)
      : db
  const changed: DistributeStep[] = []
  const kept: string[] = []
  let ok = false
  try {
    await session.query('begin')
    await session.query('set local citus.enable_local_reference_table_foreign_keys = off')
    await session.query(`set local citus.multi_shard_modify_mode = 'sequential'`)
    for (const step of plan.steps) {
      if (step.sql.length === 0) continue
      for (const sql of step.sql) {
        try {
          await session.query(sql)
        } catch (err) {
          const e = err as { message?: string; detail?: string; hint?: string }
          throw new MigrationError(
            `citus distribute stopped at ${step.table} (${step.action}), nothing changed (rolled back): ` +
              `${e.message}${e.detail ? ` (${e.detail})` : ''}${e.hint ? ` hint: ${e.hint}` : ''}. Statement: ${sql}`,
            { cause: err },
          )
        }
      }
      if (step.action === 'reference' || step.action === 'distribute') changed.push(step)
    }
    for (const step of changed) {
      await session.query('savepoint rowtenancy_truncate')
      try {
        await session.query(truncateLocalSql(step.quoted))
        await session.query('release savepoint rowtenancy_truncate')
      } catch {
        // a local table (a legacy schema) references it: keep the copy its key checks read
        await session.query('rollback to savepoint rowtenancy_truncate')
        kept.push(step.table)
      }
    }
    await session.query('commit')
    ok = true
  } catch (err) {
    await session.query('rollback').catch(() => {})
    throw err
  } finally {
    session.release?.(!ok)
  }
  return { plan, changed: changed.map((s) => s.table), keptLocalCopy: kept }
}
