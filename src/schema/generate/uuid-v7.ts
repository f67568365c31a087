import type { TenantSchemaPlan } from './model.js'

/** The function name `uuidV7Keys` creates in the target schema. */
export const UUID_V7_FUNCTION = 'rowtenancy_uuid_v7'

/**
 * `CREATE OR REPLACE FUNCTION <schema>.rowtenancy_uuid_v7()`: a version 7 UUID
 * (48-bit millisecond timestamp, then random bits) in plain SQL, for servers
 * before PostgreSQL 18 (which has `uuidv7()`).
 *
 * @internal
 */
export function uuidV7FunctionSql(quotedSchema: string): string {
  return (
    `CREATE OR REPLACE FUNCTION ${quotedSchema}."${UUID_V7_FUNCTION}"() RETURNS uuid LANGUAGE sql VOLATILE AS $$ ` +
    'select encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) placing ' +
    'substring(int8send(floor(extract(epoch from clock_timestamp()) * 1000)::bigint) from 3) ' +
    "from 1 for 6), 52, 1), 53, 1), 'hex')::uuid $$"
  )
}

/**
 * The `uuidV7Keys` option of `schema generate`: a shared identity sequence lets
 * one tenant see how many rows the others insert (the gaps between its own ids),
 * so uuid key columns get `rowtenancy_uuid_v7()` as their default (keys that
 * carry no count); integer keys are left as they are (their values are what a
 * migration copies) and named in a note.
 *
 * @internal
 */
export function withUuidV7Keys(plan: TenantSchemaPlan): TenantSchemaPlan {
  const notes = [...plan.notes]
  const tables = plan.tables.map((t) => {
    const keys = new Set((t.primaryKey?.columns ?? []).filter((c) => c !== plan.tenantColumn))
    let counted = false
    const columns = t.columns.map((c) => {
      if (!keys.has(c.name)) return c
      if (c.type === 'uuid' && c.identity === undefined && c.generated === undefined) {
        return Object.freeze({ ...c, default: `${UUID_V7_FUNCTION}()` })
      }
      if (c.identity !== undefined || /nextval\(/i.test(c.default ?? '')) counted = true
      return c
    })
    if (counted) {
      notes.push(
        `${t.name}: its key comes from a sequence shared by all tenants, so a tenant can infer how many ` +
          'rows the others insert; uuidV7Keys changes only uuid keys (see docs/security-model.md).',
      )
    }
    return Object.freeze({ ...t, columns: Object.freeze(columns) })
  })
  return Object.freeze({ ...plan, tables: Object.freeze(tables), notes: Object.freeze(notes) })
}
