import type { Queryable } from '../../sql/queryable.js'
import { quoteQualified } from '../../sql/quote.js'
import { SERVING_TABLE } from '../../tenants/serving.js'
import { sqlContext } from '../copy.js'
import { sourceChecksumStatement } from '../copy-sql.js'
import type { LedgerEntry } from '../ledger.js'
import type { MigrationPlan, TenantPlan } from '../plan.js'
import { checksumKindOf, pinChecksumSettings } from '../row-checksum.js'

/**
 * Where an online migration serves a tenant from, or `undefined` when it has no
 * say (no serving map, or no row for the tenant). Inside a transaction, the read
 * is of the committed state (a cut-over holds the tenant's migration lock).
 *
 * @internal
 */
export async function servedFrom(
  client: Queryable,
  targetSchema: string,
  tenantId: string,
): Promise<'schema' | 'shared' | undefined> {
  const table = quoteQualified(targetSchema, SERVING_TABLE)
  const exists = await client.query('select to_regclass($1) is not null as ok', [table])
  if (!exists.rows[0]?.ok) return undefined
  const { rows } = await client.query(`select placement from ${table} where tenant_id::text = $1`, [
    tenantId,
  ])
  return rows[0]?.placement
}

/**
 * For a tenant an online migration cut over: whether its legacy tables still
 * hold exactly what was verified at the cut-over (counts and checksums against
 * the ledger). The shared tables have taken the app's writes since, so a live
 * comparison means nothing; an unchanged schema is one nothing can be lost from.
 * Returns the problems found (empty: unchanged).
 *
 * @internal
 */
export async function legacyChangedSinceCutover(
  client: Queryable,
  plan: MigrationPlan,
  tp: TenantPlan,
  entry: LedgerEntry,
): Promise<string[]> {
  const ctx = sqlContext(plan, tp)
  const problems: string[] = []
  await pinChecksumSettings(client)
  for (const t of tp.tables) {
    const recorded = entry.tables[t.name]
    const s = sourceChecksumStatement(ctx, t, checksumKindOf(recorded?.checksum))
    const now = (await client.query(s.text, s.values)).rows[0]
    const changed =
      !recorded ||
      Number(now.n) !== recorded.rows ||
      (recorded.checksum !== '' && now.sum !== recorded.checksum)
    if (changed) {
      problems.push(
        `${tp.tenant.schema}.${t.name} changed since the online cut-over (rows ${now.n}, ledger ${recorded?.rows ?? 'none'}); ` +
          'something still writes to the legacy schema',
      )
    } else if (recorded.checksum === '') {
      problems.push(
        `${tp.tenant.schema}.${t.name}: the checksums of its online cut-over were not recorded ` +
          '(the run stopped right after the cut-over); rerun migrate-to-row-tenancy --online to record them',
      )
    }
  }
  return problems
}
