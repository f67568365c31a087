import pg from 'pg'
import { DataSource, EntitySchema } from 'typeorm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { allObjectsPool, runWithTenant } from '../src/entries/index.js'
import { TenantPool } from '../src/pg/index.js'
import {
  type OrmFixture,
  type OrmHarness,
  ormIsolationScenario,
  setupOrmFixture,
} from './orm-fixture.js'

interface Account {
  tenantId: string
  id: string
  name: string
}
interface Note {
  tenantId: string
  id: string
  accountId: string
  body: string
}

const AccountEntity = new EntitySchema<Account>({
  name: 'Account',
  tableName: 'accounts',
  columns: {
    tenantId: { name: 'tenant_id', type: 'bigint', primary: true },
    id: { type: 'bigint', primary: true },
    name: { type: 'text' },
  },
})
const NoteEntity = new EntitySchema<Note>({
  name: 'Note',
  tableName: 'notes',
  columns: {
    tenantId: { name: 'tenant_id', type: 'bigint', primary: true },
    id: { type: 'bigint', primary: true },
    accountId: { name: 'account_id', type: 'bigint' },
    body: { type: 'text' },
  },
})

let fx: OrmFixture
let ds: DataSource
let strict: DataSource
const sources: DataSource[] = []

/**
 * TypeORM on any pg.Pool: its `driver` option is the pg module it builds its
 * pool from; hand it one whose Pool is the given pool. TypeORM ends that pool
 * on destroy().
 */
async function dataSourceOn(pool: pg.Pool): Promise<DataSource> {
  const driver = {
    Pool: function PoolOfTenancy() {
      return pool
    },
  }
  const source = new DataSource({
    type: 'postgres',
    driver,
    entities: [AccountEntity, NoteEntity],
    synchronize: false,
  })
  sources.push(source)
  return source.initialize()
}

beforeAll(async () => {
  fx = await setupOrmFixture('orm_typeorm')
  const runtime = () => new pg.Pool({ connectionString: fx.runtimeUrl, max: 1 })
  ds = await dataSourceOn(new TenantPool({ pool: runtime() }))
  // initialize() runs start-up queries (server version ...): with requireTenant, inside a tenant
  strict = await runWithTenant(1, () =>
    dataSourceOn(new TenantPool({ pool: runtime(), requireTenant: true })),
  )
})
afterAll(async () => {
  await Promise.all(sources.map((s) => (s.isInitialized ? s.destroy() : undefined)))
  await fx.close()
})

const accounts = () => ds.getRepository(AccountEntity)

const harness: OrmHarness = {
  listAccounts: () => accounts().find({ select: { id: true, name: true } }),
  async rawCount() {
    const rows = await ds.query('select count(*)::int as n from accounts')
    return rows[0].n
  },
  async insertAccount(tenantId, id, name) {
    await accounts().insert({ tenantId: String(tenantId), id: String(id), name })
  },
  async renameAccount(id, name) {
    const r = await accounts().update({ id: String(id) }, { name })
    return r.affected ?? 0
  },
  async failingTransaction(id) {
    await ds.transaction(async (m) => {
      await m.insert(AccountEntity, { tenantId: '1', id: String(id), name: 'in-tx' })
      await m.insert(AccountEntity, { tenantId: '1', id: String(id), name: 'duplicate' })
    })
  },
  transactionInsertNote: (noteId, accountId) =>
    ds.transaction(async (m) => {
      await m.insert(NoteEntity, {
        tenantId: '2',
        id: String(noteId),
        accountId: String(accountId),
        body: 'tx-note',
      })
      const rows = await m.find(NoteEntity)
      await m.delete(NoteEntity, { tenantId: '2', id: String(noteId) })
      return rows.length
    }),
  async allObjectsAccounts(reason) {
    const admin = await dataSourceOn(allObjectsPool(fx.tenancy, reason, { actor: 'auditor' }))
    return admin.getRepository(AccountEntity).find({ select: { id: true, name: true } })
  },
  listAccountsRequiringTenant: () =>
    strict.getRepository(AccountEntity).find({ select: { id: true, name: true } }),
}

ormIsolationScenario('TypeORM', () => ({ fx, h: harness }))

describe('TypeORM specifics', () => {
  it('a query runner transaction with an isolation level and a savepoint is bound once', async () => {
    await fx.reseed()
    const names = await runWithTenant(2, async () => {
      const runner = ds.createQueryRunner()
      await runner.connect()
      try {
        await runner.startTransaction('SERIALIZABLE')
        await runner.manager.insert(AccountEntity, { tenantId: '2', id: '10', name: 'outer' })
        await runner.startTransaction() // nested: a savepoint
        await runner.manager.insert(AccountEntity, { tenantId: '2', id: '11', name: 'inner' })
        await runner.rollbackTransaction() // to the savepoint
        const rows = await runner.manager.find(AccountEntity)
        await runner.commitTransaction()
        return rows.map((r) => r.name).sort()
      } finally {
        await runner.release()
      }
    })
    expect(names).toEqual(['b1', 'outer'])
    expect((await fx.allAccounts()).filter((r) => Number(r.id) >= 10)).toEqual([
      { tenant_id: '2', id: '10', name: 'outer' },
    ])
  })
})
