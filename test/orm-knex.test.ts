import knexFactory, { type Knex } from 'knex'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { allObjectsPool, runWithTenant, tenantPoolOf } from '../src/entries/index.js'
import {
  type OrmFixture,
  type OrmHarness,
  ormIsolationScenario,
  setupOrmFixture,
} from './orm-fixture.js'

let fx: OrmFixture
let knex: Knex
let strict: Knex
const instances: Knex[] = []

/** Knex on any pg.Pool: `connectionPool` (knex >= 3.2); knex does not end a pool it was given. */
function knexOn(pool: unknown): Knex {
  const k = knexFactory({ client: 'pg', connectionPool: pool } as Knex.Config)
  instances.push(k)
  return k
}

beforeAll(async () => {
  fx = await setupOrmFixture('orm_knex')
  knex = knexOn(tenantPoolOf(fx.tenancy))
  strict = knexOn(tenantPoolOf(fx.tenancy, { requireTenant: true }))
})
afterAll(async () => {
  await Promise.all(instances.map((k) => k.destroy().catch(() => {})))
  await fx.close()
})

const harness: OrmHarness = {
  listAccounts: () => knex('accounts').select('id', 'name'),
  async rawCount() {
    const r = await knex.raw('select count(*)::int as n from accounts')
    return r.rows[0].n
  },
  async insertAccount(tenantId, id, name) {
    await knex('accounts').insert({ tenant_id: tenantId, id, name })
  },
  renameAccount: (id, name) => knex('accounts').where({ id }).update({ name }),
  async failingTransaction(id) {
    await knex.transaction(async (trx) => {
      await trx('accounts').insert({ tenant_id: 1, id, name: 'in-tx' })
      await trx('accounts').insert({ tenant_id: 1, id, name: 'duplicate' })
    })
  },
  transactionInsertNote: (noteId, accountId) =>
    knex.transaction(async (trx) => {
      await trx('notes').insert({
        tenant_id: 2,
        id: noteId,
        account_id: accountId,
        body: 'tx-note',
      })
      const rows = await trx('notes').select('*')
      await trx('notes').where({ id: noteId }).delete()
      return rows.length
    }),
  allObjectsAccounts: async (reason) => {
    const admin = knexOn(allObjectsPool(fx.tenancy, reason, { actor: 'auditor' }))
    return admin('accounts').select('id', 'name')
  },
  listAccountsRequiringTenant: () => strict('accounts').select('id', 'name'),
}

ormIsolationScenario('Knex', () => ({ fx, h: harness }))

describe('Knex specifics', () => {
  it('nested transactions are savepoints; the binding holds after a savepoint rollback', async () => {
    await fx.reseed()
    await runWithTenant(2, () =>
      knex.transaction(async (trx) => {
        await trx('accounts').insert({ tenant_id: 2, id: 10, name: 'outer' })
        await trx
          .transaction(async (inner) => {
            await inner('accounts').insert({ tenant_id: 2, id: 11, name: 'inner' })
            throw new Error('inner fails')
          })
          .catch(() => {})
        const names = (await trx('accounts').select('name')).map((r) => r.name).sort()
        expect(names).toEqual(['b1', 'outer'])
      }),
    )
    expect((await fx.allAccounts()).filter((r) => Number(r.id) >= 10)).toEqual([
      { tenant_id: '2', id: '10', name: 'outer' },
    ])
  })

  it('a transaction with an isolation level is bound', async () => {
    await fx.reseed()
    const n = await runWithTenant(1, () =>
      knex.transaction(async (trx) => (await trx('accounts').select('id')).length, {
        isolationLevel: 'serializable',
      }),
    )
    expect(n).toBe(2)
  })
})
