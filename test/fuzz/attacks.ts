import { type Kysely, sql } from 'kysely'
import { runWithTenant, setCurrentTenant, withoutTenant } from '../../src/context/index.js'
import type { Tenancy } from '../../src/tenancy/create-tenancy.js'
import type { FuzzDB } from './executors.js'

/** The attack classes of the adversarial review the fuzzer draws from. */
export const ATTACKS = [
  'cte-delete',
  'cte-update',
  'cte-insert',
  'set-ref',
  'set-row',
  'upsert-set',
  'ddl-view',
  'leaked-admin-trx',
  'switch-in-trx',
  'set-current-tenant',
] as const

/** What an attack achieved: it must be refused, or see and change nothing of the victim. */
export interface AttackResult {
  readonly attack: (typeof ATTACKS)[number]
  readonly visible: number
  readonly changed: number
  readonly refused: string | undefined
}

const REFUSALS = new Set(['CROSS_TENANT_WRITE', 'UNSUPPORTED_QUERY', 'INVALID_INPUT'])

/**
 * Runs attack number `variant` for the tenant in context against `victim`,
 * through the scoped Kysely instance of `tenancy`. None touches the attacker's
 * own rows, so the ledger is unchanged by any of them.
 */
export async function runAttack(
  tenancy: Tenancy,
  variant: number,
  victim: string,
): Promise<AttackResult> {
  const attack = ATTACKS[variant % ATTACKS.length]!
  const db = tenancy.kysely<FuzzDB>()
  const any = db as Kysely<any>
  let visible = 0
  let changed = 0
  try {
    switch (attack) {
      case 'cte-delete': {
        const r = await db
          .with('payments', (q) => q.selectFrom('payments').select('id'))
          .deleteFrom('payments')
          .where('tenant_id', '=', victim)
          .executeTakeFirst()
        changed = Number(r.numDeletedRows)
        break
      }
      case 'cte-update': {
        const r = await db
          .with('wallets', (q) => q.selectFrom('wallets').select('id'))
          .updateTable('wallets')
          .set({ name: 'pwned' })
          .where('tenant_id', '=', victim)
          .returning(['tenant_id'])
          .execute()
        changed = r.length
        break
      }
      case 'cte-insert':
        await db
          .with('wallets', (q) => q.selectFrom('wallets').select('id'))
          .insertInto('wallets')
          .values({ tenant_id: victim, id: '999998', name: 'pwned' })
          .execute()
        changed = 1
        break
      case 'set-ref':
        changed = (
          await any
            .updateTable('wallets')
            .set(sql.ref('tenant_id'), victim)
            .returning('id')
            .execute()
        ).length
        break
      case 'set-row':
        changed = (
          await any
            .updateTable('wallets')
            .set(sql`("tenant_id")`, sql`(select ${victim}::bigint)`)
            .returning('id')
            .execute()
        ).length
        break
      case 'upsert-set':
        changed = (
          await db
            .insertInto('wallets')
            .values({ id: '999997', name: 'pwned' })
            .onConflict((oc) => oc.columns(['tenant_id', 'id']).doUpdateSet({ tenant_id: victim }))
            .returning('id')
            .execute()
        ).length
        break
      case 'ddl-view':
        await db.schema
          .createView(`fuzz_v_${victim}`)
          .orReplace()
          .as(db.selectFrom('wallets').selectAll())
          .execute()
        changed = 1
        break
      case 'leaked-admin-trx': {
        const trx = await withoutTenant('fuzz attacker', () => db.startTransaction().execute())
        try {
          const r = await sql<{
            n: string
          }>`select count(*) as n from wallets where tenant_id = ${victim}`.execute(trx)
          visible = Number(r.rows[0]?.n ?? 0)
        } finally {
          await trx.rollback().execute()
        }
        break
      }
      case 'switch-in-trx':
        visible = await tenancy.transaction<FuzzDB, number>(async (trx) => {
          await trx.selectFrom('wallets').select('id').limit(1).execute()
          const r = await runWithTenant(victim, () =>
            sql<{ n: string }>`select count(*) as n from wallets`.execute(trx),
          )
          return Number(r.rows[0]?.n ?? 0)
        })
        break
      case 'set-current-tenant':
        setCurrentTenant(victim)
        visible = (await db.selectFrom('wallets').select('id').execute()).length
        break
    }
  } catch (err) {
    const code = (err as { code?: string }).code
    if (code !== undefined && REFUSALS.has(code))
      return { attack, visible: 0, changed: 0, refused: code }
    throw err
  }
  return { attack, visible, changed, refused: undefined }
}
