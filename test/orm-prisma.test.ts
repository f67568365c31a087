import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runWithTenant } from '../src/entries/index.js'
import {
  allObjectsPrismaAdapter,
  tenantPrismaAdapter,
  tenantPrismaExtension,
} from '../src/prisma/index.js'
import { isolatedPrismaClient, loadPrismaClient } from './helpers/prisma-client.js'
import {
  type OrmFixture,
  type OrmHarness,
  ormIsolationScenario,
  setupOrmFixture,
} from './orm-fixture.js'

let fx: OrmFixture
let prisma: any
let strict: any
const clients: any[] = []

beforeAll(async () => {
  const PrismaClient = await loadPrismaClient()
  fx = await setupOrmFixture('orm_prisma')
  prisma = isolatedPrismaClient(PrismaClient, fx.tenancy, clients)
  strict = new PrismaClient({
    adapter: tenantPrismaAdapter(fx.tenancy, { requireTenant: true }),
  }).$extends(tenantPrismaExtension())
  clients.push(strict)
}, 180_000)
afterAll(async () => {
  await Promise.all(clients.map((c) => c.$disconnect().catch(() => {})))
  await fx?.close()
})

const harness: OrmHarness = {
  listAccounts: () => prisma.account.findMany({ select: { id: true, name: true } }),
  async rawCount() {
    const rows = await prisma.$queryRaw`select count(*)::int as n from accounts`
    return rows[0].n
  },
  async insertAccount(tenantId, id, name) {
    await prisma.account.create({ data: { tenantId: BigInt(tenantId), id: BigInt(id), name } })
  },
  async renameAccount(id, name) {
    const r = await prisma.account.updateMany({ where: { id: BigInt(id) }, data: { name } })
    return r.count
  },
  async failingTransaction(id) {
    await prisma.$transaction(async (tx: any) => {
      await tx.account.create({ data: { tenantId: 1n, id: BigInt(id), name: 'in-tx' } })
      await tx.account.create({ data: { tenantId: 1n, id: BigInt(id), name: 'duplicate' } })
    })
  },
  transactionInsertNote: (noteId, accountId) =>
    prisma.$transaction(async (tx: any) => {
      await tx.note.create({
        data: { tenantId: 2n, id: BigInt(noteId), accountId: BigInt(accountId), body: 'tx-note' },
      })
      const rows = await tx.note.findMany()
      await tx.note.delete({ where: { tenantId_id: { tenantId: 2n, id: BigInt(noteId) } } })
      return rows.length
    }),
  allObjectsAccounts: (reason) =>
    prisma
      .$allObjects(reason, { actor: 'auditor' })
      .account.findMany({ select: { id: true, name: true } }),
  listAccountsRequiringTenant: () => strict.account.findMany({ select: { id: true, name: true } }),
}

ormIsolationScenario('Prisma', () => ({ fx, h: harness }))

describe('Prisma specifics', () => {
  it('relations through the tenant-paired foreign key stay in the tenant', async () => {
    await fx.reseed()
    const rows = await runWithTenant(2, () =>
      prisma.account.findMany({ include: { notes: true }, orderBy: { id: 'asc' } }),
    )
    expect(rows.map((a: any) => [a.name, a.notes.map((n: any) => n.body)])).toEqual([
      ['b1', ['n-b1']],
    ])
  })

  it('a batch $transaction([...]) and an isolation level are bound once', async () => {
    await fx.reseed()
    const [a, n] = await runWithTenant(1, () =>
      prisma.$transaction([prisma.account.count(), prisma.note.count()]),
    )
    expect([a, n]).toEqual([2, 1])
    const count = await runWithTenant(2, () =>
      prisma.$transaction(async (tx: any) => tx.account.count(), {
        isolationLevel: 'Serializable',
      }),
    )
    expect(count).toBe(1)
    // an interactive transaction commits (its COMMIT goes through the tenant pool's client)
    await runWithTenant(2, () =>
      prisma.$transaction(async (tx: any) => {
        await tx.account.create({ data: { tenantId: 2n, id: 20n, name: 'committed' } })
      }),
    )
    expect((await fx.allAccounts()).filter((r) => r.name === 'committed')).toEqual([
      { tenant_id: '2', id: '20', name: 'committed' },
    ])
  })

  it('allObjectsPrismaAdapter refuses an empty reason', () => {
    expect(() => allObjectsPrismaAdapter(fx.tenancy, ' ')).toThrow(/non-empty reason/)
  })
})
