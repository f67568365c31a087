import { timingSafeEqual } from 'node:crypto'
import type { Server } from 'node:http'
import express, { type NextFunction, type Request, type Response } from 'express'
import { sql } from 'kysely'
import pg from 'pg'
import {
  fromHeader,
  fromHost,
  httpStatusOf,
  RETRY_AFTER_SECONDS,
  tenant,
} from '../../src/entries/express.js'
import {
  createTenancy,
  InvalidInputError,
  type Tenancy,
  TenancyError,
  TenantStore,
} from '../../src/entries/index.js'
import { FINANCE_TABLES, type FinanceDB } from './db.js'

/**
 * What the finance API needs: the tenancy (scoped Kysely on the runtime role,
 * `allObjects` on the owner), the tenant store the middleware looks tenants up
 * in, and the token that opens the admin report.
 *
 * @example
 * ```ts
 * const app = createFinanceApp({ tenancy, store, adminToken: 's3cret' })
 * ```
 */
export interface FinanceAppOptions {
  readonly tenancy: Tenancy
  readonly store: TenantStore
  /** `Authorization: Bearer <adminToken>` opens `GET /admin/report`. */
  readonly adminToken: string
}

const CURRENCY = /^[A-Z]{3}$/
const KINDS = new Set(['checking', 'savings', 'credit'])
const AMOUNT = /^-?\d{1,12}(\.\d{1,2})?$/

/** @internal */
function text(body: Record<string, unknown>, key: string, max: number, fallback?: string): string {
  const value = body[key] ?? fallback
  if (typeof value !== 'string' || value.trim().length === 0 || value.length > max) {
    throw new InvalidInputError(`"${key}" must be a non-empty string of at most ${max} characters.`)
  }
  return value.trim()
}

/** @internal */
function accountId(raw: unknown): string {
  if (typeof raw !== 'string' || !/^\d{1,18}$/.test(raw)) {
    throw new InvalidInputError('The account id in the path must be a positive whole number.')
  }
  return raw
}

/** @internal */
function body(req: Request): Record<string, unknown> {
  const b = req.body as unknown
  if (b === null || typeof b !== 'object' || Array.isArray(b)) {
    throw new InvalidInputError('Send a JSON object body with Content-Type: application/json.')
  }
  return b as Record<string, unknown>
}

/**
 * The finance JSON API on Express 5. Every route but `/health` and
 * `/admin/report` is tenant-scoped by rowtenancy's `tenant()` middleware (the
 * `X-Tenant-ID` header, id or slug, or a tenant domain in `Host`), and its
 * queries go through the scoped Kysely instance, under RLS on the runtime role.
 *
 * - `GET /tenant`: the resolved tenant
 * - `GET /accounts`, `POST /accounts {name, currency?, kind?}`
 * - `POST /accounts/:id/transactions {amount, description?, postedAt?}`
 * - `GET /accounts/:id/balance`
 * - `GET /admin/report` (Bearer token): every tenant's totals through `allObjects`, audited
 *
 * @example
 * ```ts
 * createFinanceApp({ tenancy, store, adminToken }).listen(3000)
 * // curl -H 'X-Tenant-ID: acme' localhost:3000/accounts
 * ```
 */
export function createFinanceApp({ tenancy, store, adminToken }: FinanceAppOptions) {
  const db = tenancy.kysely<FinanceDB>()
  const app = express()
  app.disable('x-powered-by')
  app.use(express.json({ limit: '16kb' }))
  app.get('/health', (_req, res) => {
    res.json({ ok: true })
  })
  app.get('/admin/report', async (req, res) => {
    const expected = Buffer.from(`Bearer ${adminToken}`)
    const given = Buffer.from(req.get('authorization') ?? '')
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      res
        .status(401)
        .json({ error: 'UNAUTHORIZED', message: 'Send Authorization: Bearer <admin token>.' })
      return
    }
    const actor = req.get('x-admin-user') ?? 'admin'
    const admin = tenancy.allObjects<FinanceDB>('finance admin report', { actor })
    // Per-tenant aggregates grouped by tenant_id, merged here: the same on one PostgreSQL
    // and on Citus, which cannot run a correlated subquery from the (reference) tenants
    // table into the distributed tables.
    const tenants = await admin
      .selectFrom('tenants')
      .select(['id', 'slug', 'name'])
      .orderBy('id')
      .execute()
    const accounts = await admin
      .selectFrom('finance_account')
      .select((eb) => ['tenant_id', eb.fn.countAll<string>().as('n')])
      .groupBy('tenant_id')
      .execute()
    const transactions = await admin
      .selectFrom('finance_transaction')
      .select((eb) => [
        'tenant_id',
        eb.fn.countAll<string>().as('n'),
        sql<string>`coalesce(sum(amount), 0)`.as('s'),
      ])
      .groupBy('tenant_id')
      .execute()
    const a = new Map(accounts.map((r) => [String(r.tenant_id), String(r.n)]))
    const x = new Map(transactions.map((r) => [String(r.tenant_id), r]))
    const rows = tenants.map((t) => ({
      ...t,
      accounts: a.get(String(t.id)) ?? '0',
      transactions: String(x.get(String(t.id))?.n ?? '0'),
      balance: String(x.get(String(t.id))?.s ?? '0'),
    }))
    const total = (k: 'accounts' | 'transactions') => rows.reduce((n, r) => n + Number(r[k]), 0)
    res.json({
      reason: 'finance admin report',
      actor,
      tenants: rows,
      totals: {
        tenants: rows.length,
        accounts: total('accounts'),
        transactions: total('transactions'),
      },
    })
  })

  app.use(tenant({ store, resolvers: [fromHeader(), fromHost()], skip: ['/health', '/admin/*'] }))

  app.get('/tenant', (req, res) => {
    res.json(req.tenant)
  })
  app.get('/accounts', async (_req, res) => {
    const accounts = await db
      .selectFrom('finance_account')
      .select(['id', 'name', 'currency', 'kind', 'opened_at', 'is_closed'])
      .orderBy('id')
      .execute()
    res.json({ accounts })
  })
  app.post('/accounts', async (req, res) => {
    const b = body(req)
    const currency = text(b, 'currency', 3, 'EUR')
    const kind = text(b, 'kind', 20, 'checking')
    if (!CURRENCY.test(currency))
      throw new InvalidInputError('"currency" must be 3 capital letters (EUR).')
    if (!KINDS.has(kind))
      throw new InvalidInputError(`"kind" must be one of ${[...KINDS].join(', ')}.`)
    const account = await db
      .insertInto('finance_account')
      .values({ name: text(b, 'name', 100), currency, kind, owner_id: null })
      .returning(['id', 'name', 'currency', 'kind', 'opened_at'])
      .executeTakeFirstOrThrow()
    res.status(201).json(account)
  })
  app.post('/accounts/:id/transactions', async (req, res) => {
    const id = accountId(req.params.id)
    const b = body(req)
    const amount = String(b.amount ?? '')
    if (!AMOUNT.test(amount)) {
      throw new InvalidInputError(
        '"amount" must be a number with at most 2 decimals, e.g. "-12.50".',
      )
    }
    const postedAt = b.postedAt === undefined ? new Date() : new Date(String(b.postedAt))
    if (Number.isNaN(postedAt.getTime()))
      throw new InvalidInputError('"postedAt" must be an ISO date.')
    const account = await db
      .selectFrom('finance_account')
      .select('id')
      .where('id', '=', id)
      .executeTakeFirst()
    if (!account) {
      res.status(404).json({ error: 'NOT_FOUND', message: `This tenant has no account ${id}.` })
      return
    }
    const description = b.description === undefined ? '' : text(b, 'description', 200)
    const row = await db
      .insertInto('finance_transaction')
      .values({ account_id: id, amount, posted_at: postedAt, description, created_by_id: null })
      .returning(['id', 'account_id', 'amount', 'posted_at', 'description'])
      .executeTakeFirstOrThrow()
    res.status(201).json(row)
  })
  app.get('/accounts/:id/balance', async (req, res) => {
    const id = accountId(req.params.id)
    const row = await db
      .selectFrom('finance_account as a')
      .leftJoin('finance_transaction as x', 'x.account_id', 'a.id')
      .where('a.id', '=', id)
      .groupBy(['a.id', 'a.name', 'a.currency'])
      .select((eb) => [
        'a.id',
        'a.name',
        'a.currency',
        sql<string>`coalesce(sum(x.amount), 0)`.as('balance'),
        eb.fn.count<string>('x.id').as('transactions'),
      ])
      .executeTakeFirst()
    if (!row) {
      res.status(404).json({ error: 'NOT_FOUND', message: `This tenant has no account ${id}.` })
      return
    }
    res.json(row)
  })

  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    if (err instanceof TenancyError) {
      const status = httpStatusOf(err)
      // 503 (database unavailable, a tenant being cut over by an online migration): safe to retry
      if (status === 503) res.set('retry-after', String(RETRY_AFTER_SECONDS))
      res.status(status).json({ error: err.code, message: err.message })
      return
    }
    const code = (err as { code?: string; status?: number }).code
    if (code === '23505') {
      res
        .status(409)
        .json({ error: 'CONFLICT', message: 'An account with this name already exists.' })
      return
    }
    const status = (err as { status?: number }).status
    if (status === 400) {
      res.status(400).json({ error: 'BAD_REQUEST', message: 'The body is not valid JSON.' })
      return
    }
    console.error(err)
    res
      .status(500)
      .json({ error: 'INTERNAL', message: 'Something went wrong; see the server log.' })
  })
  return app
}

/**
 * Starts the finance API: a runtime pool (the role that owns nothing and has no
 * BYPASSRLS), an admin pool (the owner, for `allObjects` and the audit log),
 * the tenancy, and an HTTP server on `host:port` (port 0: a free one).
 *
 * @example
 * ```ts
 * const api = await startFinanceApi({ runtimeUrl, ownerUrl, adminToken: 't', port: 0 })
 * console.log(api.url) // http://127.0.0.1:41234
 * await api.close()
 * ```
 */
export async function startFinanceApi(options: {
  runtimeUrl: string
  ownerUrl: string
  adminToken: string
  port?: number
  host?: string
  /** Serve each tenant from its legacy schema until an online migration cuts it over. */
  hybrid?: boolean
}): Promise<{ url: string; port: number; tenancy: Tenancy; close(): Promise<void> }> {
  const pool = new pg.Pool({ connectionString: options.runtimeUrl, max: 10 })
  const adminPool = new pg.Pool({ connectionString: options.ownerUrl, max: 4 })
  // An idle connection that the server ends (a restart, Ctrl-C reaching PostgreSQL
  // first) must not crash the process; the next query reconnects or fails cleanly.
  for (const p of [pool, adminPool]) p.on('error', () => {})
  const tenancy = createTenancy({
    pool,
    adminPool,
    tables: FINANCE_TABLES,
    tenantIdType: 'bigint',
    ...(options.hybrid ? { hybrid: true } : {}),
  })
  const store = new TenantStore({ db: pool, idType: 'bigint', ttlMs: 5_000 })
  const app = createFinanceApp({ tenancy, store, adminToken: options.adminToken })
  const host = options.host ?? '127.0.0.1'
  const server = await new Promise<Server>((resolve, reject) => {
    const s = app.listen(options.port ?? 0, host, (err?: Error) => (err ? reject(err) : resolve(s)))
  })
  const address = server.address()
  const port = typeof address === 'object' && address ? address.port : 0
  return {
    url: `http://${host}:${port}`,
    port,
    tenancy,
    async close() {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      await tenancy.destroy()
    },
  }
}
