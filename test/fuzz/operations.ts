import fc from 'fast-check'
import type pg from 'pg'
import { runWithTenant } from '../../src/context/index.js'
import type { FuzzApp } from './app.js'
import type { AttackResult } from './attacks.js'
import {
  type Call,
  executeCall,
  type FuzzEnv,
  InjectedFailure,
  type JoinRow,
  type ProbeResult,
  type Via,
  type WalletRow,
} from './executors.js'
import type { TenantLedger } from './ledger.js'

/** The ways an operation reaches the database. */
export const PATHS = ['http-kysely', 'http-trx', 'http-pg', 'kysely', 'trx', 'pg'] as const
export type FuzzPath = (typeof PATHS)[number]

export type FuzzKind =
  | 'read'
  | 'insert'
  | 'upsert'
  | 'update'
  | 'delete'
  | 'pay'
  | 'join'
  | 'probe'
  | 'fail'
  | 'admin'
  | 'nested'
  | 'dup'
  | 'attack'

/** One random "request". */
export interface FuzzOp {
  readonly tenant: number
  readonly path: FuzzPath
  readonly kind: FuzzKind
  /** Picks the wallet among the free ones, the read variant, the victim. */
  readonly pick: number
  /** Delay before the request starts, in ms. */
  readonly delay: number
  /** How the call yields between statements (see `pause`). */
  readonly jitter: number
  /** Header value by slug instead of id (HTTP); raw SQL instead of the builder (Kysely joins). */
  readonly flag: boolean
}

const kinds: [FuzzKind, number][] = [
  ['read', 5],
  ['insert', 4],
  ['upsert', 3],
  ['update', 3],
  ['delete', 2],
  ['pay', 3],
  ['join', 3],
  ['probe', 2],
  ['fail', 1],
  ['admin', 1],
  ['nested', 2],
  ['dup', 1],
  // the attacker: about one operation in ten is drawn from the adversarial review's classes
  ['attack', 4],
]

/**
 * A random operation for one of `tenants` tenants.
 *
 * @example
 * ```ts
 * fc.sample(opArbitrary(6), 3)
 * ```
 */
export function opArbitrary(
  tenants: number,
  paths: readonly FuzzPath[] = PATHS,
): fc.Arbitrary<FuzzOp> {
  return fc.record({
    tenant: fc.integer({ min: 0, max: tenants - 1 }),
    path: fc.constantFrom(...paths),
    kind: fc.oneof(...kinds.map(([k, weight]) => ({ arbitrary: fc.constant(k), weight }))),
    pick: fc.nat({ max: 10_000 }),
    delay: fc.integer({ min: 0, max: 4 }),
    jitter: fc.integer({ min: 0, max: 4 }),
    flag: fc.boolean(),
  })
}

/** Counters the suite prints at the end. */
export interface FuzzStats {
  cases: number
  operations: number
  byPath: Record<string, number>
  byKind: Record<string, number>
  readRowsChecked: number
  finalRowsChecked: number
  probes: number
  attacks: number
  attacksRefused: number
  injectedFailures: number
  constraintErrors: number
  leaks: number
  lost: number
  duplicated: number
}

export function emptyStats(): FuzzStats {
  return {
    cases: 0,
    operations: 0,
    byPath: {},
    byKind: {},
    readRowsChecked: 0,
    finalRowsChecked: 0,
    probes: 0,
    attacks: 0,
    attacksRefused: 0,
    injectedFailures: 0,
    constraintErrors: 0,
    leaks: 0,
    lost: 0,
    duplicated: 0,
  }
}

/** What the fuzzer runs operations against. */
export interface FuzzWorld {
  readonly env: FuzzEnv
  readonly app: FuzzApp
  readonly ledgers: readonly TenantLedger[]
  readonly slugs: readonly string[]
  readonly stats: FuzzStats
  /** The role bypasses RLS: only the Kysely plugin isolates, so no raw SQL is sent. */
  readonly pluginOnly?: boolean
}

/** A failed check, with the operation that found it. */
export class FuzzFailure extends Error {}

function fail(op: FuzzOp, message: string): never {
  throw new FuzzFailure(`${message}\n  op: ${JSON.stringify(op)}`)
}

/** Sends one call the operation's way and returns its result (or the injected failure). */
async function send(world: FuzzWorld, op: FuzzOp, call: Call): Promise<unknown> {
  const ledger = world.ledgers[op.tenant]!
  if (op.path.startsWith('http-')) {
    const via = op.path.slice(5) as Via
    const value = op.flag ? world.slugs[op.tenant]! : ledger.id
    const reply = await world.app.call(value, via, call)
    if (reply.status === 409 && reply.body?.injected) {
      if (reply.body.tenant !== ledger.id) fail(op, `handler saw tenant ${reply.body.tenant}`)
      throw new InjectedFailure()
    }
    if (reply.status === 422 && reply.body?.pgCode) {
      if (reply.body.tenant !== ledger.id) fail(op, `handler saw tenant ${reply.body.tenant}`)
      throw Object.assign(new Error(`database error ${reply.body.pgCode}`), {
        code: reply.body.pgCode,
      })
    }
    if (reply.status !== 200) fail(op, `HTTP ${reply.status}: ${JSON.stringify(reply.body)}`)
    // pitfall: lost async context: the handler must see the request's tenant before and after its awaits
    if (reply.body.tenant !== ledger.id || reply.body.after !== ledger.id) {
      world.stats.leaks++
      fail(op, `handler context was ${reply.body.tenant}/${reply.body.after}, not ${ledger.id}`)
    }
    return reply.body.result
  }
  return runWithTenant(ledger.id, () => executeCall(world.env, op.path as Via, call))
}

function checkWallets(
  world: FuzzWorld,
  op: FuzzOp,
  rows: WalletRow[],
  stable: Set<number> | undefined,
  ledger: TenantLedger = world.ledgers[op.tenant]!,
): void {
  const seen = new Set<number>()
  for (const r of rows) {
    world.stats.readRowsChecked++
    const id = Number(r.id)
    if (
      String(r.tenant_id) !== ledger.id ||
      !r.name.startsWith(`t${ledger.id}:w${id}:`) ||
      (r.bound !== null && r.bound !== ledger.id)
    ) {
      world.stats.leaks++
      fail(op, `tenant ${ledger.id} read a foreign wallet row ${JSON.stringify(r)}`)
    }
    if (!ledger.everWallets.has(id)) fail(op, `read an unknown wallet ${JSON.stringify(r)}`)
    seen.add(id)
  }
  for (const id of stable ?? []) {
    if (!seen.has(id)) fail(op, `read missed committed wallet ${id} of tenant ${ledger.id}`)
  }
}

function checkJoin(world: FuzzWorld, op: FuzzOp, rows: JoinRow[], stable: Set<number>): void {
  const ledger = world.ledgers[op.tenant]!
  const seen = new Set<number>()
  for (const r of rows) {
    world.stats.readRowsChecked++
    const t = ledger.id
    if (
      String(r.p_tenant) !== t ||
      String(r.w_tenant) !== t ||
      r.note !== ledger.paymentNote(Number(r.id)) ||
      !r.name.startsWith(`t${t}:w${r.wallet_id}:`) ||
      (r.bound !== null && r.bound !== t)
    ) {
      world.stats.leaks++
      fail(op, `tenant ${t} joined a foreign row ${JSON.stringify(r)}`)
    }
    if (!ledger.everPayments.has(Number(r.id))) fail(op, `unknown payment ${JSON.stringify(r)}`)
    seen.add(Number(r.id))
  }
  for (const id of stable) if (!seen.has(id)) fail(op, `join missed committed payment ${id}`)
}

/**
 * Runs one operation: claims what it touches in the ledger, sends it, checks
 * what came back, and records the committed outcome.
 *
 * @example
 * ```ts
 * await Promise.all(ops.map((op) => perform(world, op)))
 * ```
 */
export async function perform(world: FuzzWorld, op: FuzzOp): Promise<void> {
  try {
    await performUnlabelled(world, op)
  } catch (err) {
    if (err instanceof FuzzFailure) throw err
    // an unexpected error: say which operation met it
    const e = err as { message?: string; code?: string }
    throw new FuzzFailure(
      `${e.message ?? String(err)} (code ${e.code ?? '-'})\n  op: ${JSON.stringify(op)}`,
      { cause: err },
    )
  }
}

async function performUnlabelled(world: FuzzWorld, op: FuzzOp): Promise<void> {
  const ledger = world.ledgers[op.tenant]!
  const { stats } = world
  stats.operations++
  stats.byPath[op.path] = (stats.byPath[op.path] ?? 0) + 1
  stats.byKind[op.kind] = (stats.byKind[op.kind] ?? 0) + 1
  const jitter = op.jitter
  const insertFresh = async () => {
    const id = ledger.freshWallet()
    const name = ledger.walletName(id, 'v0')
    const n = await send(world, op, { m: 'insert', id, name, jitter })
    if (n !== 1) fail(op, `insert reported ${n} rows`)
    ledger.wallets.set(id, { name, balance: 0 })
  }
  switch (op.kind) {
    case 'read': {
      const stable = ledger.stableWallets()
      const mark = ledger.deleteMark()
      const rows = (await send(world, op, {
        m: 'list',
        variant: op.pick % 3,
        jitter,
      })) as WalletRow[]
      // a delete that committed while the read was in flight may or may not show
      for (const id of ledger.deletedSince(mark)) stable.delete(id)
      checkWallets(world, op, rows, op.pick % 3 === 0 ? stable : undefined)
      return
    }
    case 'insert':
      return insertFresh()
    case 'upsert': {
      const existing = op.flag ? ledger.claim(op.pick, 'write') : undefined
      const id = existing ?? ledger.freshWallet()
      const name = ledger.walletName(id, `u${op.pick}`)
      try {
        const n = await send(world, op, { m: 'upsert', id, name, jitter })
        if (n !== 1) fail(op, `upsert reported ${n} rows`)
        const before = ledger.wallets.get(id)
        ledger.wallets.set(id, { name, balance: before ? before.balance + 1 : 0 })
      } finally {
        if (existing !== undefined) ledger.release(existing)
      }
      return
    }
    case 'update': {
      const id = ledger.claim(op.pick, 'write')
      if (id === undefined) return insertFresh()
      try {
        const name = ledger.walletName(id, `e${op.pick}`)
        const delta = (op.pick % 7) - 3
        const n = await send(world, op, { m: 'update', id, name, delta, jitter })
        if (n !== 1) fail(op, `update of wallet ${id} reported ${n} rows`)
        const w = ledger.wallets.get(id)!
        ledger.wallets.set(id, { name, balance: w.balance + delta })
      } finally {
        ledger.release(id)
      }
      return
    }
    case 'delete': {
      const id = ledger.claim(op.pick, 'delete')
      if (id === undefined) return insertFresh()
      try {
        const n = await send(world, op, { m: 'remove', id, jitter })
        if (n !== 1) fail(op, `delete of wallet ${id} reported ${n} rows`)
        ledger.deleteWallet(id)
      } finally {
        ledger.release(id)
      }
      return
    }
    case 'pay': {
      const walletId = ledger.claim(op.pick, 'write')
      if (walletId === undefined) return insertFresh()
      try {
        const id = ledger.freshPayment()
        const note = ledger.paymentNote(id)
        const amount = 1 + (op.pick % 500)
        const n = await send(world, op, { m: 'pay', id, walletId, amount, note, jitter })
        if (n !== 1) fail(op, `payment insert reported ${n} rows`)
        ledger.payments.set(id, { walletId, amount, note })
      } finally {
        ledger.release(walletId)
      }
      return
    }
    case 'join': {
      const payments = ledger.stablePayments()
      const mark = ledger.deleteMark()
      const raw = op.flag && !world.pluginOnly
      const rows = (await send(world, op, { m: 'join', raw, jitter })) as JoinRow[]
      const gone = ledger.deletedSince(mark)
      const stable = new Set([...payments].filter(([, w]) => !gone.has(w)).map(([id]) => id))
      checkJoin(world, op, rows, stable)
      return
    }
    case 'dup': {
      // a statement the database refuses (duplicate key), on the connection the next tenant gets
      const id = ledger.claim(op.pick, 'write')
      if (id === undefined) return insertFresh()
      try {
        const name = ledger.walletName(id, 'dup')
        const outcome = await send(world, op, { m: 'insert', id, name, jitter }).then(
          () => 'inserted',
          (err) => {
            if ((err as { code?: string }).code === '23505') return 'refused'
            throw err
          },
        )
        if (outcome !== 'refused') fail(op, `a duplicate of wallet ${id} was inserted`)
        stats.constraintErrors++
      } finally {
        ledger.release(id)
      }
      return
    }
    case 'admin': {
      const stable = ledger.stableWallets()
      const mark = ledger.deleteMark()
      const r = (await send(world, op, { m: 'admin', jitter })) as {
        total: number
        rows: WalletRow[]
      }
      for (const id of ledger.deletedSince(mark)) stable.delete(id)
      checkWallets(world, op, r.rows, stable)
      if (r.total < r.rows.length) fail(op, `withoutTenant counted ${r.total} wallets`)
      return
    }
    case 'nested': {
      const others = world.ledgers.filter((l) => l !== ledger)
      const other = others[op.pick % others.length]!
      const stable = ledger.stableWallets()
      const otherStable = other.stableWallets()
      const mark = ledger.deleteMark()
      const otherMark = other.deleteMark()
      const r = (await send(world, op, { m: 'nested', victim: other.id, jitter })) as {
        inner: WalletRow[]
        outer: WalletRow[]
      }
      for (const id of ledger.deletedSince(mark)) stable.delete(id)
      for (const id of other.deletedSince(otherMark)) otherStable.delete(id)
      checkWallets(world, op, r.inner, otherStable, other)
      checkWallets(world, op, r.outer, stable)
      return
    }
    case 'attack': {
      stats.attacks++
      const others = world.ledgers.filter((l) => l !== ledger)
      const victim = others[op.pick % others.length]!.id
      const r = (await send(world, op, {
        m: 'attack',
        variant: op.pick,
        victim,
        jitter,
      })) as AttackResult
      if (r.visible !== 0 || r.changed !== 0) {
        stats.leaks++
        fail(
          op,
          `attack ${r.attack} by tenant ${ledger.id} reached tenant ${victim}: ${JSON.stringify(r)}`,
        )
      }
      if (r.refused) stats.attacksRefused++
      return
    }
    case 'probe': {
      stats.probes++
      const others = world.ledgers.filter((l) => l !== ledger)
      const victim = others[op.pick % others.length]!.id
      const raw = !world.pluginOnly
      const r = (await send(world, op, { m: 'probe', victim, raw, jitter })) as ProbeResult
      if (r.visible !== 0 || r.changed !== 0 || !r.insertRefused) {
        stats.leaks++
        fail(op, `tenant ${ledger.id} reached tenant ${victim}: ${JSON.stringify(r)}`)
      }
      return
    }
    case 'fail': {
      stats.injectedFailures++
      const walletId = ledger.claim(op.pick, 'write') ?? null
      try {
        const id = ledger.freshWallet()
        const name = ledger.walletName(id, 'rolled-back')
        // a plain Kysely call has no transaction to roll back: run it as `trx`
        const path: FuzzPath =
          op.path === 'kysely' ? 'trx' : op.path === 'http-kysely' ? 'http-trx' : op.path
        const sendOp = { ...op, path }
        const thrown = await send(world, sendOp, {
          m: 'failAfterWrite',
          id,
          name,
          walletId,
          jitter,
        }).then(
          () => false,
          (err) => {
            if (err instanceof InjectedFailure) return true
            throw err
          },
        )
        if (!thrown) fail(op, 'the injected failure did not surface')
      } finally {
        if (walletId !== null) ledger.release(walletId)
      }
      return
    }
  }
}

/**
 * Compares every row in the database (read as the owner, no RLS) with the
 * ledgers: each row belongs to the tenant whose stamp it carries, nothing the
 * ledger committed is missing, nothing it did not commit is there.
 *
 * @example
 * ```ts
 * await reconcile(world, ownerPool)
 * ```
 */
export async function reconcile(world: FuzzWorld, owner: pg.Pool): Promise<string[]> {
  const problems: string[] = []
  const byId = new Map(world.ledgers.map((l) => [l.id, l]))
  const wallets = await owner.query(
    'select tenant_id::text as t, id::int as id, name, balance from wallets order by 1, 2',
  )
  const payments = await owner.query(
    'select tenant_id::text as t, id::int as id, wallet_id::int as w, amount, note from payments order by 1, 2',
  )
  const seenW = new Map<string, Set<number>>()
  const seenP = new Map<string, Set<number>>()
  for (const r of wallets.rows) {
    world.stats.finalRowsChecked++
    const l = byId.get(r.t)
    if (!r.name.startsWith(`t${r.t}:w${r.id}:`)) {
      world.stats.leaks++
      problems.push(`wallet ${r.t}/${r.id} carries a foreign stamp: ${r.name}`)
    }
    const want = l?.wallets.get(r.id)
    if (!want) {
      world.stats.duplicated++
      problems.push(`wallet ${r.t}/${r.id} is in the database but no write committed it`)
    } else if (want.name !== r.name || want.balance !== r.balance) {
      problems.push(
        `wallet ${r.t}/${r.id} is ${r.name}/${r.balance}, expected ${want.name}/${want.balance}`,
      )
    }
    if (!seenW.has(r.t)) seenW.set(r.t, new Set())
    seenW.get(r.t)!.add(r.id)
  }
  for (const r of payments.rows) {
    world.stats.finalRowsChecked++
    const want = byId.get(r.t)?.payments.get(r.id)
    if (!want) {
      world.stats.duplicated++
      problems.push(`payment ${r.t}/${r.id} is in the database but no write committed it`)
    } else if (want.walletId !== r.w || want.amount !== r.amount || want.note !== r.note) {
      problems.push(`payment ${r.t}/${r.id} differs from the ledger`)
    }
    if (!seenP.has(r.t)) seenP.set(r.t, new Set())
    seenP.get(r.t)!.add(r.id)
  }
  for (const l of world.ledgers) {
    for (const id of l.wallets.keys()) {
      if (!seenW.get(l.id)?.has(id)) {
        world.stats.lost++
        problems.push(`wallet ${l.id}/${id} was committed but is gone`)
      }
    }
    for (const id of l.payments.keys()) {
      if (!seenP.get(l.id)?.has(id)) {
        world.stats.lost++
        problems.push(`payment ${l.id}/${id} was committed but is gone`)
      }
    }
    if (l.claims.size > 0)
      problems.push(`tenant ${l.id} still holds claims ${[...l.claims.keys()]}`)
  }
  return problems
}
