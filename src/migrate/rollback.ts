import { MigrationError } from '../errors/index.js'
import { existingSchemas, introspectSchemas } from '../sql/catalog/index.js'
import { DEFAULTS } from '../sql/defaults.js'
import type { ConnectableQueryable } from '../sql/queryable.js'
import { quoteIdent, quoteQualified } from '../sql/quote.js'
import { parseTenantId } from '../tenants/id-types.js'
import { existingIdType } from '../tenants/install.js'
import { ownRows } from './copy-sql.js'
import { ID_MAP_TABLE, lockLedgerEntry, writeLedgerEntry } from './ledger.js'
import { withTenantMigrationLock } from './migration-lock.js'
import { servedFrom } from './online/guards.js'
import { foreignKeyOrder } from './order.js'

/**
 * Options of {@link rollbackTenants}.
 */
export interface RollbackOptions {
  readonly db: ConnectableQueryable
  readonly tenantIds: readonly string[]
  readonly targetSchema?: string
  readonly tenantsSchema?: string
  /** The tenant column of the target tables; `tenant_id` by default. */
  readonly tenantColumn?: string
}

/**
 * What a rollback removed for one tenant.
 */
export interface RollbackResult {
  readonly tenantId: string
  readonly deleted: Readonly<Record<string, number>>
  readonly tenantRemoved: boolean
}

/**
 * `rowtenancy rollback --tenant-id <id>`: removes a migrated tenant's rows from
 * the shared tables (every table its ledger entry lists, children first), its id
 * mappings, and its `tenants` row when the migration created it, in one
 * transaction per tenant; the ledger entry becomes `rolled_back` so a later run
 * migrates it again. Refuses when the source schema is gone (the shared rows
 * would be the only copy). The source schema is not touched.
 *
 * @example
 * ```ts
 * await rollbackTenants({ db: pool, tenantIds: ['7'] })
 * // [{ tenantId: '7', deleted: { author: 2, book: 3 }, tenantRemoved: true }]
 * ```
 */
export async function rollbackTenants(options: RollbackOptions): Promise<RollbackResult[]> {
  const targetSchema = options.targetSchema ?? DEFAULTS.schema
  const tenantsSchema = options.tenantsSchema ?? targetSchema
  if (options.tenantIds.length === 0) {
    throw new MigrationError('Say which tenant to roll back: `tenantIds`.')
  }
  const client = await options.db.connect()
  const results: RollbackResult[] = []
  try {
    const idType = await existingIdType(client, tenantsSchema)
    if (!idType)
      throw new MigrationError(`There is no ${tenantsSchema}.tenants table; nothing was migrated.`)
    const ids = options.tenantIds.map((raw) => parseTenantId(idType, raw))
    const targets = (await introspectSchemas(client, [targetSchema])).get(targetSchema)!
    const edges = [...targets.values()].flatMap((t) =>
      t.foreignKeys
        .filter((f) => f.refSchema === targetSchema)
        .map((f) => [t.name, f.refTable] as const),
    )
    const order = foreignKeyOrder([...targets.keys()], edges).order.reverse()
    const mapExists = (
      await client.query('select to_regclass($1) is not null as ok', [
        quoteQualified(targetSchema, ID_MAP_TABLE),
      ])
    ).rows[0]?.ok
    for (const id of ids) {
      const result = await withTenantMigrationLock(client, id, async () => {
        if ((await servedFrom(client, targetSchema, id)) === 'shared') {
          throw new MigrationError(
            `Tenant ${id} was cut over by an online migration and the app writes to the shared tables: ` +
              'deleting its rows would lose those writes. Move it back with `rowtenancy rollback --online --tenant-id ' +
              `${id}\`.`,
          )
        }
        const entry = await lockLedgerEntry(client, targetSchema, id).catch(() => undefined)
        if (!entry || Object.keys(entry.tables).length === 0 || entry.state === 'rolled_back') {
          throw new MigrationError(
            `Tenant ${id} has no migrated rows to roll back (see the ledger, ${targetSchema}.rowtenancy_migration).`,
          )
        }
        if (
          entry.state === 'schema_dropped' ||
          !(await existingSchemas(client, [entry.schema])).has(entry.schema)
        ) {
          throw new MigrationError(
            `The source schema ${JSON.stringify(entry.schema)} of tenant ${id} is gone; rolling back would delete ` +
              'the only copy of its rows. Restore the schema from a backup first.',
          )
        }
        const replica = await client
          .query('savepoint r; set local session_replication_role = replica; release savepoint r')
          .then(() => true)
          .catch(async () => {
            await client.query('rollback to savepoint r')
            return false
          })
        await client.query('set constraints all deferred')
        const deleted: Record<string, number> = {}
        for (const name of order) {
          if (entry.tables[name] === undefined) continue
          const res = await client.query(
            // each table by its own rows: a child not in the ledger keeps its rows
            `delete from ${ownRows(targetSchema, targets.get(name)!)} where ${quoteIdent(options.tenantColumn ?? DEFAULTS.tenantColumn)} = $1::${idType}`,
            [id],
          )
          deleted[name] = res.rowCount ?? 0
        }
        if (mapExists) {
          await client.query(
            `delete from ${quoteQualified(targetSchema, ID_MAP_TABLE)} where tenant_id = $1`,
            [id],
          )
        }
        if (replica) await client.query('set local session_replication_role = origin')
        if (entry.createdTenant) {
          await client.query(
            `delete from ${quoteQualified(tenantsSchema, 'tenant_domains')} where tenant_id = $1::${idType}`,
            [id],
          )
          await client.query(
            `delete from ${quoteQualified(tenantsSchema, 'tenants')} where id = $1::${idType}`,
            [id],
          )
        }
        await writeLedgerEntry(client, targetSchema, {
          ...entry,
          state: 'rolled_back',
          tables: {},
          createdTenant: false,
          finishedAt: new Date(),
          verifiedAt: null,
          verifyOk: null,
          lastError: null,
        })
        return { tenantId: id, deleted, tenantRemoved: entry.createdTenant }
      })
      results.push(result)
    }
  } finally {
    client.release()
  }
  return results
}
