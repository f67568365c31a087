import { MigrationError } from '../errors/index.js'
import type { ConnectableQueryable, Queryable } from '../sql/queryable.js'
import { quoteIdent } from '../sql/quote.js'
import { lockLedgerEntry, writeLedgerEntry } from './ledger.js'
import { withTenantMigrationLock } from './migration-lock.js'
import { legacyChangedSinceCutover, servedFrom } from './online/guards.js'
import type { MigrationPlanOptions } from './plan.js'
import { migratedTenants, verifyTenant } from './verify.js'
import { uncheckedTables } from './verify-empty.js'

/**
 * Options of {@link dropSchemas}.
 */
export interface DropSchemasOptions
  extends Omit<MigrationPlanOptions, 'all' | 'models' | 'idStrategy'> {
  readonly db: ConnectableQueryable
  /** Must be true: dropping a schema cannot be undone. */
  readonly yes: boolean
}

/**
 * What happened to one tenant's schema.
 */
export interface DropResult {
  readonly tenantId: string
  readonly schema: string
  readonly dropped: boolean
  readonly problems: readonly string[]
}

/** Objects outside the schema that depend on it (views, foreign keys). */
async function outsideDependents(db: Queryable, schema: string): Promise<string[]> {
  const { rows } = await db.query(
    `select distinct vn.nspname || '.' || vc.relname as name
       from pg_depend d
       join pg_rewrite r on d.classid = 'pg_rewrite'::regclass and r.oid = d.objid
       join pg_class vc on vc.oid = r.ev_class join pg_namespace vn on vn.oid = vc.relnamespace
       join pg_class tc on d.refclassid = 'pg_class'::regclass and tc.oid = d.refobjid
       join pg_namespace tn on tn.oid = tc.relnamespace
      where tn.nspname = $1 and vn.nspname <> $1
     union
     select distinct cn.nspname || '.' || cc.relname || ' (foreign key ' || k.conname || ')'
       from pg_constraint k join pg_class cc on cc.oid = k.conrelid join pg_namespace cn on cn.oid = cc.relnamespace
       join pg_class rc on rc.oid = k.confrelid join pg_namespace rn on rn.oid = rc.relnamespace
      where k.contype = 'f' and rn.nspname = $1 and cn.nspname <> $1
      order by 1`,
    [schema],
  )
  return rows.map((r) => r.name as string)
}

/**
 * `rowtenancy drop-schemas --yes`: for each fully migrated tenant (or
 * `tenantIds`), verifies it again inside the dropping transaction and, only when
 * that passes and nothing outside the schema depends on it, drops the tenant
 * schema and marks the ledger entry `schema_dropped`. The only command that
 * removes a tenant schema.
 *
 * @example
 * ```ts
 * const results = await dropSchemas({ db: pool, yes: true })
 * results.filter((r) => !r.dropped) // tenants that did not verify
 * ```
 */
export async function dropSchemas(options: DropSchemasOptions): Promise<DropResult[]> {
  if (options.yes !== true) {
    throw new MigrationError(
      'drop-schemas removes tenant schemas for good; pass `yes` to confirm (after a passing rowtenancy verify).',
    )
  }
  const client = await options.db.connect()
  const results: DropResult[] = []
  try {
    const { plan, items } = await migratedTenants(client, options)
    const explicit = (options.tenantIds?.length ?? 0) > 0
    for (const { tp, entry } of items) {
      if (entry.state === 'schema_dropped') {
        if (explicit)
          results.push({
            tenantId: entry.tenantId,
            schema: entry.schema,
            dropped: false,
            problems: ['already dropped'],
          })
        continue
      }
      if (entry.state !== 'done') {
        results.push({
          tenantId: entry.tenantId,
          schema: entry.schema,
          dropped: false,
          problems: ['only some tables are migrated (`models`); migrate the rest first'],
        })
        continue
      }
      const result = await withTenantMigrationLock(client, entry.tenantId, async () => {
        const locked = await lockLedgerEntry(client, plan.targetSchema, entry.tenantId)
        // An online migration: served from its schema (not cut over), or cut over and checked
        // against the ledger of its cut-over (the shared rows have moved on since).
        const served = await servedFrom(client, plan.targetSchema, entry.tenantId)
        const check =
          served === undefined ? await verifyTenant(client, plan, tp, locked ?? entry) : undefined
        const problems =
          served === 'schema'
            ? ['the app is served from this schema (online migration not cut over yet)']
            : served === 'shared'
              ? [
                  ...uncheckedTables(tp, locked ?? entry, plan.targetSchema),
                  ...(await legacyChangedSinceCutover(client, plan, tp, locked ?? entry)),
                ]
              : [...check!.problems]
        const deps = await outsideDependents(client, entry.schema)
        if (deps.length > 0)
          problems.push(`objects outside the schema depend on it: ${deps.join(', ')}`)
        if (problems.length > 0 || locked?.state !== 'done') {
          // nothing written: the transaction ends with the schema and the ledger untouched
          return { tenantId: entry.tenantId, schema: entry.schema, dropped: false, problems }
        }
        await client.query(`drop schema ${quoteIdent(entry.schema)} cascade`)
        // Record the checksums just verified: after the drop they are all verify can compare with.
        const tables = { ...locked.tables }
        for (const c of check?.tables ?? []) {
          const recorded = tables[c.table]
          if (recorded)
            tables[c.table] = { ...recorded, rows: c.targetRows, checksum: c.targetChecksum }
        }
        await writeLedgerEntry(client, plan.targetSchema, {
          ...locked,
          tables,
          state: 'schema_dropped',
          verifiedAt: new Date(),
          verifyOk: true,
        })
        return { tenantId: entry.tenantId, schema: entry.schema, dropped: true, problems: [] }
      })
      results.push(result)
    }
  } finally {
    client.release()
  }
  return results
}
