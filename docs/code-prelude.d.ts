/**
 * What the TypeScript blocks of README.md and docs/*.md take as given from the
 * application around them (`npm run typecheck:docs` compiles every block with this
 * file). Library names are never declared here: a block imports what it uses.
 */
import type { Express } from 'express'
import type { FastifyInstance } from 'fastify'
import type { Hono } from 'hono'
import type { Generated, Kysely } from 'kysely'
import type pg from 'pg'
import type { Tenancy, TenantStore } from 'rowtenancy'
import type { TenantRequest } from 'rowtenancy/express'
import type { JobTenancy } from 'rowtenancy/jobs'

declare global {
  /** The application's tables, as Kysely sees them. */
  interface DB {
    accounts: { tenant_id: Generated<string>; id: Generated<string>; name: string }
    transactions: {
      tenant_id: Generated<string>
      id: Generated<string>
      account_id: string
      amount: string
    }
    finance_account: { tenant_id: Generated<string>; id: Generated<string>; name: string }
  }
  /** The runtime role's pool (owns nothing, no BYPASSRLS) and the owner's pool. */
  const pool: pg.Pool
  const adminPool: pg.Pool
  const runtimePool: pg.Pool
  const euPool: pg.Pool
  const euAdminPool: pg.Pool
  const connectionString: string
  const RUNTIME_URL: string
  /** A tenancy (`createTenancy`), its tables and its scoped Kysely instance. */
  const tenancy: Tenancy
  const tables: string[]
  const db: Kysely<DB>
  const store: TenantStore
  const jobs: JobTenancy
  /** The web frameworks' app objects. */
  const app: Express
  const fastify: FastifyInstance
  const hono: Hono
  /** The application's own code. */
  function somethingAsync(): Promise<void>
  function verifiedUser(req: TenantRequest): { tenantIds: string[] } | undefined
  function currentUser(): { email: string } | undefined
  const log: { info(value: unknown): void }
  function sendInvoice(payload: unknown): Promise<void>
  function nightlyReport(payload: unknown): Promise<void>
  const today: string
  /** TypeORM entity classes. */
  const entities: Function[]
}
