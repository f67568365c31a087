/**
 * The fuzzer's record of every write, per tenant: what each tenant committed,
 * what is in flight, and which wallets an operation holds. An operation claims
 * a wallet before it touches it, so no two operations race on one row and the
 * expected final state is exact.
 */
export interface WalletState {
  name: string
  balance: number
}

export interface PaymentState {
  walletId: number
  amount: number
  note: string
}

/** One tenant's ledger. */
export class TenantLedger {
  readonly wallets = new Map<number, WalletState>()
  readonly payments = new Map<number, PaymentState>()
  /** Every wallet / payment id that ever existed or was in flight (reads may see old snapshots). */
  readonly everWallets = new Set<number>()
  readonly everPayments = new Set<number>()
  readonly claims = new Map<number, 'write' | 'delete'>()
  #nextWallet: number
  #nextPayment: number

  constructor(
    readonly id: string,
    firstFreeId: number,
  ) {
    this.#nextWallet = firstFreeId
    this.#nextPayment = firstFreeId
  }

  /** The name stamp a wallet of this tenant carries: `t<tenant>:w<id>:<version>`. */
  walletName(id: number, version: string): string {
    return `t${this.id}:w${id}:${version}`
  }

  paymentNote(id: number): string {
    return `t${this.id}:p${id}`
  }

  freshWallet(): number {
    const id = this.#nextWallet++
    this.everWallets.add(id)
    return id
  }

  freshPayment(): number {
    const id = this.#nextPayment++
    this.everPayments.add(id)
    return id
  }

  /** Claims a committed, unclaimed wallet (picked by `pick`), or returns undefined. */
  claim(pick: number, kind: 'write' | 'delete'): number | undefined {
    const free = [...this.wallets.keys()].filter((id) => !this.claims.has(id)).sort((a, b) => a - b)
    if (free.length === 0) return undefined
    const id = free[pick % free.length]!
    this.claims.set(id, kind)
    if (kind === 'delete') this.#deleteLog.push(id)
    return id
  }

  readonly #deleteLog: number[] = []

  /** A mark in the log of delete claims (see {@link deletedSince}). */
  deleteMark(): number {
    return this.#deleteLog.length
  }

  /** Wallets claimed for deletion since `mark`: a read in flight meanwhile may miss them. */
  deletedSince(mark: number): Set<number> {
    return new Set(this.#deleteLog.slice(mark))
  }

  release(id: number): void {
    this.claims.delete(id)
  }

  /** Wallets every read that starts now must return (committed, not being deleted). */
  stableWallets(): Set<number> {
    return new Set([...this.wallets.keys()].filter((id) => this.claims.get(id) !== 'delete'))
  }

  /** Payments every join that starts now must return, with their wallets. */
  stablePayments(): Map<number, number> {
    return new Map(
      [...this.payments.entries()]
        .filter(([, p]) => this.claims.get(p.walletId) !== 'delete')
        .map(([id, p]) => [id, p.walletId]),
    )
  }

  /** A committed delete: the wallet and (ON DELETE CASCADE) its payments. */
  deleteWallet(id: number): void {
    this.wallets.delete(id)
    for (const [pid, p] of this.payments) if (p.walletId === id) this.payments.delete(pid)
  }
}
