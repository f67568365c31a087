/**
 * One legacy tenant as the generator plans it, before anything is written.
 *
 * @example
 * ```ts
 * const t: LegacyTenantPlan = { id: 1, slug: 'acme', schema: 'tenant_acme', name: 'Acme Corp',
 *   domains: ['acme.localhost'], users: 12, accounts: 40, transactions: 20000 }
 * ```
 */
export interface LegacyTenantPlan {
  /** The legacy id (`customers_client.id`), 1-based. */
  readonly id: number
  readonly slug: string
  /** The tenant's schema, `tenant_<slug with - as _>`. */
  readonly schema: string
  readonly name: string
  /** Its domains; the first is the primary one. */
  readonly domains: readonly string[]
  readonly users: number
  readonly accounts: number
  readonly transactions: number
}

const NAMES = [
  'acme',
  'globex',
  'initech',
  'umbrella',
  'hooli',
  'stark',
  'wayne',
  'wonka',
  'cyberdyne',
  'soylent',
  'tyrell',
  'oscorp',
  'vandelay',
  'dunder',
  'pied-piper',
  'massive',
  'aperture',
  'gringotts',
  'monarch',
  'nakatomi',
] as const

/**
 * A small seeded pseudo-random generator (mulberry32): the same seed gives the
 * same sequence on every machine.
 *
 * @example
 * ```ts
 * const next = seededRandom(42)
 * next() // 0.6011037519201636, always
 * ```
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** @internal */
function clamp(n: number, lo: number, hi: number): number {
  return Math.max(lo, Math.min(hi, Math.round(n)))
}

/**
 * Plans the tenants of a legacy database: uneven sizes, as in real life. The
 * first tenants (about one in twenty, at least one) are large, the rest are
 * log-uniformly small to medium. `scale` multiplies every row count.
 *
 * @example
 * ```ts
 * const plan = planLegacyTenants({ tenants: 30, seed: 1, scale: 1 })
 * plan[0] // { id: 1, slug: 'acme', schema: 'tenant_acme', transactions: 20000, ... }
 * ```
 */
export function planLegacyTenants(options: {
  tenants: number
  seed: number
  scale: number
}): LegacyTenantPlan[] {
  const random = seededRandom(options.seed)
  const large = Math.max(1, Math.round(options.tenants / 20))
  const out: LegacyTenantPlan[] = []
  for (let i = 0; i < options.tenants; i++) {
    const base = NAMES[i % NAMES.length]!
    const round = Math.floor(i / NAMES.length)
    const slug = round === 0 ? base : `${base}-${round + 1}`
    const raw = i < large ? 20_000 * (0.75 + random() / 2) : 40 * Math.exp(random() * 4.5)
    const transactions = Math.max(1, Math.round(raw * options.scale))
    const accounts = clamp(transactions / 150, 2, 200)
    const users = clamp(accounts / 3, 1, 50)
    const title = slug
      .split('-')
      .map((w) => w[0]!.toUpperCase() + w.slice(1))
      .join(' ')
    const domains = [`${slug}.localhost`]
    if (random() < 0.3) domains.push(`${slug}.example.com`)
    out.push({
      id: i + 1,
      slug,
      schema: `tenant_${slug.replaceAll('-', '_')}`,
      name: `${title} ${['Inc', 'Ltd', 'GmbH', 'SA', 'LLC'][i % 5]}`,
      domains,
      users,
      accounts,
      transactions,
    })
  }
  return out
}
