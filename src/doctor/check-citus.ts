import { loadCitusTables } from '../citus/catalog.js'
import { type DistributeRefusal, type DistributeStep, planDistribution } from '../citus/plan.js'
import { bindStatement } from '../db/binding.js'
import { bindSequence } from '../db/citus-binding.js'
import type { Queryable } from '../sql/queryable.js'
import { quoteIdent, quoteLiteral } from '../sql/quote.js'
import type { TenantIdType } from '../tenants/id-types.js'
import { type Finding, finding } from './findings.js'

/**
 * The Citus audit (`doctor --citus`, automatic when Citus is installed): every
 * key and foreign key of a tenant table holds the distribution column (else
 * Citus cannot distribute it), tenant tables are distributed by the tenant
 * column and co-located, shared tables are reference tables, no policy holds a
 * sub-select, no trigger blocks distribution (all read from the plan of
 * `rowtenancy citus distribute`), and the binding reaches the workers (a live
 * probe in a rolled-back transaction).
 *
 * @internal
 * @example
 * ```ts
 * const findings = await checkCitus(pool, { tenantColumn: 'tenant_id', tenantIdType: 'bigint', schema: 'public' })
 * ```
 */
export async function checkCitus(
  db: Queryable & { connect?: () => Promise<Queryable & { release(): void }> },
  options: { tenantColumn: string; tenantIdType: TenantIdType; schema: string },
): Promise<{ findings: Finding[]; skipped: string[] }> {
  const plan = await planDistribution(db, {
    tenantColumn: options.tenantColumn,
    schema: options.schema,
  })
  const probe = await probeBinding(db, options)
  return {
    findings: [
      ...plan.refusals.map(refusalFinding),
      ...plan.steps.flatMap((s) => stepFinding(s, options.tenantColumn)),
      ...(probe.kind === 'failed' ? [probeFinding(probe)] : []),
    ],
    skipped: probe.kind === 'skipped' ? [probe.reason] : [],
  }
}

/** A table `rowtenancy citus distribute` refuses to distribute. */
function refusalFinding(r: DistributeRefusal): Finding {
  return finding(
    'CITUS_CANNOT_DISTRIBUTE',
    `${r.table} ${r.object}`,
    `${r.object} ${r.problem}.`,
    r.fix,
  )
}

/** The finding of a step `rowtenancy citus distribute` would still run (none for the others). */
function stepFinding(s: DistributeStep, tenantColumn: string): Finding[] {
  const run = s.sql.join('; ')
  if (s.action === 'distribute') {
    return [
      finding(
        'CITUS_NOT_DISTRIBUTED',
        s.table,
        `A tenant-aware table that is not distributed by ${tenantColumn}: it stays on the coordinator.`,
        `rowtenancy citus distribute (runs: ${run})`,
        'warning',
      ),
    ]
  }
  if (s.action === 'colocate') {
    return [
      finding(
        'CITUS_NOT_COLOCATED',
        s.table,
        `Not co-located with the other tenant tables: joins and foreign keys between them cannot stay on one node (${s.reason}).`,
        `rowtenancy citus distribute (runs: ${run})`,
      ),
    ]
  }
  if (s.action === 'reference') {
    return [
      finding(
        'CITUS_SHARED_NOT_REFERENCE',
        s.table,
        'A shared table that is not a reference table: tenant queries joining it cannot run on one shard.',
        `rowtenancy citus distribute (runs: ${run})`,
        'warning',
      ),
    ]
  }
  return []
}

/** The binding probe found a worker that did not see the tenant. */
function probeFinding(probe: Extract<Probe, { kind: 'failed' }>): Finding {
  return finding(
    'CITUS_BINDING_NOT_PROPAGATED',
    probe.table,
    `A SET LOCAL binding of tenant ${probe.tenant} did not reach the worker holding its rows (${probe.detail}): RLS there sees no tenant.`,
    "Bind with binding: 'auto' (the default) or 'set_local'; rowtenancy sends set local citus.propagate_set_commands = 'local' in the same pipeline. Check nothing resets it (e.g. ALTER ROLE ... SET citus.propagate_set_commands = 'none' is overridden per transaction).",
  )
}

type Probe =
  | { kind: 'ok' }
  | { kind: 'skipped'; reason: string }
  | { kind: 'failed'; table: string; tenant: string; detail: string }

/**
 * Binds the tenant of one row exactly as the library does on Citus (BEGIN, the
 * propagation setting, SET LOCAL), then counts that tenant's rows with a
 * predicate on the setting, which only the worker evaluates. Rolled back.
 *
 */
async function probeBinding(
  db: Queryable & { connect?: () => Promise<Queryable & { release(): void }> },
  options: { tenantColumn: string; tenantIdType: TenantIdType; schema: string },
): Promise<Probe> {
  const tables = (await loadCitusTables(db, [options.schema], options.tenantColumn)).filter(
    (t) => t.distribution.kind === 'distributed' && t.distribution.column === options.tenantColumn,
  )
  const col = quoteIdent(options.tenantColumn)
  for (const t of tables) {
    const sample = await db.query(`select ${col}::text as id from ${t.quoted} limit 1`)
    const tenant = sample.rows[0]?.id as string | undefined
    if (tenant === undefined) continue
    const client = db.connect ? await db.connect() : db
    try {
      await client.query('begin')
      const bind = bindStatement('set_local', options.tenantIdType, tenant)
      for (const s of bindSequence('set_local', bind)) await client.query(s.text)
      const { rows } = await client.query(
        `select count(*)::int8 as seen, (select count(*) from ${t.quoted} where ${col} = $1)::int8 as total
           from ${t.quoted}
          where ${col} = $1 and current_setting(${quoteLiteral('rowtenancy.tenant_id')}, true) = $1::text`,
        [tenant],
      )
      const { seen, total } = rows[0] as { seen: string; total: string }
      if (seen !== total) {
        return {
          kind: 'failed',
          table: t.qualified,
          tenant,
          detail: `${seen} of ${total} rows saw the setting`,
        }
      }
      return { kind: 'ok' }
    } finally {
      await client.query('rollback').catch(() => {})
      ;(client as { release?: () => void }).release?.()
    }
  }
  return {
    kind: 'skipped',
    reason: 'citus binding probe: no distributed tenant table has a row to probe with',
  }
}
