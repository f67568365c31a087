import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import pg from 'pg'
import { InvalidInputError, quoteIdent } from '../../../src/entries/index.js'
import { legacyPublicDdl, legacyTenantData, legacyTenantDdl } from './ddl.js'
import { type LegacyTenantPlan, planLegacyTenants } from './sizes.js'

export { type LegacyTenantPlan, planLegacyTenants } from './sizes.js'

/**
 * Options of {@link generateLegacy}.
 *
 * @example
 * ```ts
 * const options: LegacyOptions = { tenants: 50, seed: 1, scale: 1 }
 * ```
 */
export interface LegacyOptions {
  /** How many tenants (schemas); 40 by default. */
  readonly tenants?: number
  /** The seed of every random choice; 1 by default. Same seed, same database. */
  readonly seed?: number
  /** Multiplies every row count; 1 by default (about 100k transactions for 40 tenants). */
  readonly scale?: number
  /** Tenant schemas built at once; 4 by default. */
  readonly concurrency?: number
  /** ANALYZE each tenant's tables (progress estimates read the statistics); true by default. */
  readonly analyze?: boolean
  /** Drop an existing legacy layout (the two tables and their tenant schemas) first. */
  readonly replace?: boolean
  /** Called after each tenant is written. */
  readonly onTenant?: (tenant: LegacyTenantPlan, done: number, total: number) => void
}

/**
 * What {@link generateLegacy} wrote.
 *
 * @example
 * ```ts
 * const { tenants, totals, ms } = await generateLegacy(pool, { tenants: 5 })
 * totals.transactions // 31337
 * ```
 */
export interface LegacySummary {
  readonly tenants: readonly LegacyTenantPlan[]
  readonly totals: { users: number; accounts: number; transactions: number }
  readonly ms: number
}

/** @internal */
function positiveInt(name: string, value: number, max: number): number {
  if (!Number.isSafeInteger(value) || value < 1 || value > max) {
    throw new InvalidInputError(`${name} must be a whole number from 1 to ${max}; got ${value}.`)
  }
  return value
}

/**
 * Builds a schema-per-tenant database the way a django-tenants app has it:
 * `public.customers_client (id, schema_name, slug, name, ...)`,
 * `public.customers_domain (domain, tenant_id, is_primary)`, and per tenant a
 * schema `tenant_<slug>` with `auth_user`, `auth_membership`, `finance_account`
 * and `finance_transaction` (a foreign key to `finance_account`). Sizes are
 * uneven (a few large tenants, many small) and seeded; every row is made by the
 * server with `generate_series`. Refuses to touch an existing legacy layout
 * unless `replace` is set.
 *
 * @example
 * ```ts
 * const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL })
 * const { tenants } = await generateLegacy(pool, { tenants: 50, seed: 7 })
 * tenants[0].schema // 'tenant_acme'
 * ```
 */
export async function generateLegacy(
  pool: pg.Pool,
  options: LegacyOptions = {},
): Promise<LegacySummary> {
  const started = performance.now()
  const count = positiveInt('tenants', options.tenants ?? 40, 100_000)
  const seed = options.seed ?? 1
  if (!Number.isSafeInteger(seed) || seed < 0 || seed > 2 ** 31) {
    throw new InvalidInputError(`seed must be a whole number from 0 to 2^31; got ${seed}.`)
  }
  const scale = options.scale ?? 1
  if (!(scale > 0 && scale <= 10_000)) {
    throw new InvalidInputError(`scale must be a number above 0 (at most 10000); got ${scale}.`)
  }
  const concurrency = positiveInt('concurrency', options.concurrency ?? 4, 64)
  const plan = planLegacyTenants({ tenants: count, seed, scale })

  await prepare(pool, options.replace === true)
  await pool.query(legacyPublicDdl())
  await pool.query(
    `insert into public.customers_client (id, schema_name, slug, name, paid_until, on_trial)
     select id, schema_name, slug, name, date '2026-12-31', id % 7 = 0
       from unnest($1::bigint[], $2::text[], $3::text[], $4::text[]) as t(id, schema_name, slug, name)`,
    [
      plan.map((t) => t.id),
      plan.map((t) => t.schema),
      plan.map((t) => t.slug),
      plan.map((t) => t.name),
    ],
  )
  const domains = plan.flatMap((t) => t.domains.map((d, i) => ({ d, id: t.id, primary: i === 0 })))
  await pool.query(
    `insert into public.customers_domain (domain, tenant_id, is_primary)
     select * from unnest($1::text[], $2::bigint[], $3::boolean[])`,
    [domains.map((x) => x.d), domains.map((x) => x.id), domains.map((x) => x.primary)],
  )
  await pool.query(
    `select setval(pg_get_serial_sequence('public.customers_client', 'id'), $1::bigint)`,
    [count],
  )

  let next = 0
  let done = 0
  const worker = async () => {
    for (;;) {
      const tenant = plan[next++]
      if (!tenant) return
      await writeTenant(pool, tenant, seed, options.analyze !== false)
      options.onTenant?.(tenant, ++done, plan.length)
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, plan.length) }, worker))
  const sum = (k: 'users' | 'accounts' | 'transactions') => plan.reduce((n, t) => n + t[k], 0)
  return {
    tenants: plan,
    totals: { users: sum('users'), accounts: sum('accounts'), transactions: sum('transactions') },
    ms: performance.now() - started,
  }
}

/** Refuses (or with `replace`, drops) an existing legacy layout. @internal */
async function prepare(pool: pg.Pool, replace: boolean): Promise<void> {
  const { rows } = await pool.query(
    `select to_regclass('public.customers_client') is not null as exists`,
  )
  if (!rows[0].exists) return
  if (!replace) {
    throw new InvalidInputError(
      'public.customers_client already exists: this database already holds a legacy layout. ' +
        'Use a fresh database, or pass --replace (replace: true) to drop it and its tenant schemas first.',
    )
  }
  const schemas = await pool.query(`select schema_name from public.customers_client`)
  for (const r of schemas.rows)
    await pool.query(`drop schema if exists ${quoteIdent(r.schema_name)} cascade`)
  await pool.query('drop table if exists public.customers_domain, public.customers_client cascade')
}

/** One tenant's schema and rows, in one transaction. @internal */
async function writeTenant(
  pool: pg.Pool,
  tenant: LegacyTenantPlan,
  seed: number,
  analyze: boolean,
): Promise<void> {
  const client = await pool.connect()
  try {
    await client.query('begin')
    // Generated data: no need to wait for the WAL flush at commit.
    await client.query('set local synchronous_commit = off')
    await client.query(legacyTenantDdl(tenant.schema))
    const counts = { seed: seed * 100_003 + tenant.id, ...tenant }
    for (const { sql, values } of legacyTenantData(tenant.schema, counts))
      await client.query(sql, values)
    await client.query('commit')
    if (analyze) {
      // Fresh statistics: the migration's progress bars read pg_class.reltuples.
      const s = quoteIdent(tenant.schema)
      await client.query(
        `analyze ${s}.auth_user, ${s}.auth_membership, ${s}.finance_account, ${s}.finance_transaction`,
      )
    }
  } catch (err) {
    await client.query('rollback').catch(() => {})
    throw err
  } finally {
    client.release()
  }
}

/** `npx tsx examples/finance/legacy/generate.ts --tenants 50 [--seed 1] [--scale 1] [--replace]` */
async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'database-url': { type: 'string', default: process.env.DATABASE_URL },
      tenants: { type: 'string', default: '40' },
      seed: { type: 'string', default: '1' },
      scale: { type: 'string', default: '1' },
      replace: { type: 'boolean', default: false },
    },
  })
  if (!values['database-url'])
    throw new InvalidInputError('Pass --database-url or set DATABASE_URL.')
  const pool = new pg.Pool({ connectionString: values['database-url'], max: 6 })
  try {
    const summary = await generateLegacy(pool, {
      tenants: Number(values.tenants),
      seed: Number(values.seed),
      scale: Number(values.scale),
      replace: values.replace,
    })
    const { users, accounts, transactions } = summary.totals
    console.log(
      `legacy: ${summary.tenants.length} tenant schemas, ${users} users, ${accounts} accounts, ` +
        `${transactions} transactions in ${(summary.ms / 1000).toFixed(1)} s`,
    )
  } finally {
    await pool.end()
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err) => {
    console.error(`error: ${err.message}`)
    process.exitCode = 1
  })
}
