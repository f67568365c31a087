import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { runWithTenant } from '../src/entries/index.js'
import { tenantPrismaAdapter } from '../src/prisma/index.js'
import { isolatedPrismaClient, loadPrismaClient } from './helpers/prisma-client.js'
import { type OrmFixture, setupOrmFixture } from './orm-fixture.js'

/** Hostile code through Prisma: an interactive transaction kept or timed out, raw session-level settings. */
let fx: OrmFixture
let prisma: any
let PrismaClient: Awaited<ReturnType<typeof loadPrismaClient>>
const clients: any[] = []

beforeAll(async () => {
  PrismaClient = await loadPrismaClient()
  fx = await setupOrmFixture('adv_prisma')
  prisma = isolatedPrismaClient(PrismaClient, fx.tenancy, clients)
}, 180_000)
afterAll(async () => {
  await Promise.all(clients.map((c) => c.$disconnect().catch(() => {})))
  await fx?.close()
})
beforeEach(() => fx.reseed())

const names = (rows: any[]) => rows.map((r) => r.name).sort()

describe('prisma', () => {
  it('an interactive transaction kept after commit runs nothing in tenant 2 transaction', async () => {
    let kept: any
    await runWithTenant('1', () =>
      prisma.$transaction(async (tx: any) => {
        kept = tx
        await tx.account.count()
      }),
    )
    const seen: unknown[] = []
    await runWithTenant('2', () =>
      prisma.$transaction(async (tx2: any) => {
        await tx2.account.count()
        seen.push(
          await kept.account.findMany().then(names, (e: Error) => `ERR ${e.message.slice(0, 80)}`),
        )
        seen.push(
          await kept
            .$executeRawUnsafe(`update accounts set name = name || '-pwned'`)
            .catch((e: Error) => `ERR ${e.message.slice(0, 80)}`),
        )
      }),
    )
    expect(JSON.stringify(seen)).not.toMatch(/b1/)
    expect((await fx.allAccounts()).map((r) => r.name).join(',')).not.toMatch(/pwned/)
  })

  it('raw multi-statement session-level set_config does not reach a no-tenant read', async () => {
    await runWithTenant('1', () =>
      prisma
        .$executeRawUnsafe(`select 1; select set_config('rowtenancy.tenant_id', '2', false)`)
        .catch((e: Error) => `ERR ${e.message.slice(0, 100)}`),
    )
    expect(names(await prisma.account.findMany())).toEqual([])
  })

  it('a transaction timed out while its callback keeps going', async () => {
    const seen: unknown[] = []
    const p = runWithTenant('1', () =>
      prisma
        .$transaction(
          async (tx: any) => {
            await tx.account.count()
            await new Promise((r) => setTimeout(r, 300))
            seen.push(
              await tx.account
                .findMany()
                .then(names, (e: Error) => `ERR ${e.message.slice(0, 80)}`),
            )
          },
          { timeout: 100 },
        )
        .catch((e: Error) => `ERR ${e.message.slice(0, 80)}`),
    )
    // tenant 2 grabs the connection meanwhile
    await new Promise((r) => setTimeout(r, 150))
    const t2 = runWithTenant('2', () =>
      prisma.$transaction(async (tx: any) => {
        await new Promise((r) => setTimeout(r, 300))
        return names(await tx.account.findMany())
      }),
    )
    const [, b] = await Promise.all([p, t2])
    expect(JSON.stringify(seen)).not.toMatch(/b1/)
    expect(b).toEqual(['b1'])
  })
})

describe("prisma's request batching (findUnique calls, batch $transaction of one tick)", () => {
  const key = (tenantId: bigint, id: bigint) => ({ where: { tenantId_id: { tenantId, id } } })

  it("two tenants' calls in one tick each run bound to their own tenant", async () => {
    const [own, foreign, note, batch] = await Promise.all([
      runWithTenant('1', () => prisma.account.findUnique(key(1n, 2n))),
      runWithTenant('2', () => prisma.account.findUnique(key(1n, 1n))),
      runWithTenant('2', () => prisma.note.findUnique(key(1n, 1n))),
      runWithTenant('2', () =>
        prisma.$transaction([prisma.account.findMany({ select: { name: true } })]),
      ),
    ])
    expect(own?.name).toBe('a2')
    expect(foreign).toBeNull()
    expect(note).toBeNull()
    expect(batch).toEqual([[{ name: 'b1' }]])
  })

  it('a client on the tenant adapter without tenantPrismaExtension runs nothing', async () => {
    const bare = new PrismaClient({ adapter: tenantPrismaAdapter(fx.tenancy) })
    clients.push(bare)
    const outcomes = await Promise.allSettled([
      runWithTenant('1', () => bare.account.findUnique(key(1n, 2n))),
      runWithTenant('2', () => bare.account.findUnique(key(1n, 1n))),
      runWithTenant('2', () => bare.account.findMany()),
      runWithTenant('2', () => bare.$transaction([bare.account.findMany()])),
      runWithTenant('2', () => bare.$transaction((tx: any) => tx.account.findMany())),
    ])
    for (const outcome of outcomes) {
      expect(outcome.status).toBe('rejected')
      expect(String((outcome as PromiseRejectedResult).reason)).toMatch(/tenantPrismaExtension/)
    }
  })
})
