import { MigrationError } from '../errors/index.js'
import type { Queryable } from '../sql/queryable.js'
import type { MigrationPlan } from './plan.js'

/**
 * How a copy keeps target triggers quiet and copes with foreign-key cycles:
 * `replica` sets `session_replication_role = replica` for the tenant's
 * transaction (no user trigger fires, foreign keys are checked by rowtenancy's own
 * orphan check before commit); `deferred` runs `SET CONSTRAINTS ALL DEFERRED`
 * and is only chosen when no target table has a user trigger and every
 * foreign key in a cycle is deferrable.
 */
export type CopyGuard = 'replica' | 'deferred'

/**
 * Picks the {@link CopyGuard} for a run: `replica` when the role may set
 * `session_replication_role` (a superuser, or a role granted `SET` on it), else
 * `deferred` if that is safe, else a clear `MigrationError` naming the trigger or
 * constraint in the way. Writes nothing.
 *
 * @example
 * ```ts
 * const guard = await chooseGuard(client, plan) // 'replica' as a superuser
 * ```
 */
export async function chooseGuard(client: Queryable, plan: MigrationPlan): Promise<CopyGuard> {
  return guardFor(plan, await mayReplicate(client))
}

/**
 * Whether the role on `client` may set `session_replication_role` (tried in a read-only
 * transaction, rolled back). Writes nothing.
 *
 * @example
 * ```ts
 * await mayReplicate(client) // true as a superuser
 * ```
 * @internal
 */
export async function mayReplicate(client: Queryable): Promise<boolean> {
  await client.query('begin read only')
  try {
    await client.query('set local session_replication_role = replica')
    return true
  } catch (err) {
    if ((err as { code?: string }).code !== '42501') throw err
    return false
  } finally {
    await client.query('rollback')
  }
}

/**
 * {@link chooseGuard} once it is known whether the role may set `session_replication_role`.
 *
 * @example
 * ```ts
 * guardFor(plan, false) // 'deferred', or a MigrationError naming what is in the way
 * ```
 * @internal
 */
export function guardFor(plan: MigrationPlan, replica: boolean): CopyGuard {
  if (replica) return 'replica'
  const used = new Set(plan.tenants.flatMap((t) => t.tables.map((x) => x.name)))
  const problems: string[] = []
  for (const name of used) {
    const target = plan.targets.get(name)
    if (!target) continue
    for (const trig of target.userTriggers) {
      problems.push(
        `trigger ${JSON.stringify(trig)} on ${plan.targetSchema}.${name} would fire on every copied row`,
      )
    }
    // A key pointing at a table copied later must wait for the commit; one pointing back is checked at once.
    for (const fk of target.foreignKeys) {
      const later = plan.tables.indexOf(fk.refTable) > plan.tables.indexOf(name)
      if (fk.refSchema === plan.targetSchema && later && used.has(fk.refTable) && !fk.deferrable) {
        problems.push(
          `foreign key ${JSON.stringify(fk.name)} on ${name} points at ${fk.refTable}, which is copied later (a cycle), and is not DEFERRABLE`,
        )
      }
    }
  }
  if (problems.length > 0) {
    throw new MigrationError(
      `The migration role may not set session_replication_role, and without it: ${problems.join('; ')}. ` +
        'Run the migration as a superuser, or GRANT SET ON PARAMETER session_replication_role TO the role ' +
        '(PostgreSQL 15+), or make those constraints DEFERRABLE and disable those triggers for the migration.',
    )
  }
  return 'deferred'
}
