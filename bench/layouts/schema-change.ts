import type pg from 'pg'
import { quoteIdent } from '../../src/sql/quote.js'
import type { BenchTenant } from './build.js'
import { timed } from './stats.js'

/**
 * The same schema change in both layouts, `repetitions` times, alternating
 * which layout goes first: add a nullable `varchar(40)` column and an index on
 * it to `finance_transaction`. Row-level: once, on the shared table, the index
 * tenant-first `(tenant_id, col)`. Schema-per-tenant: once per tenant schema, in
 * its own transaction, one after another on one connection (as
 * `migrate_schemas` does), the index on `(col)`. Each repetition adds a new
 * column (nothing is undone), so run this last.
 *
 * @example
 * ```ts
 * const { row, schema } = await measureSchemaChange(pool, tenants, 3)
 * ```
 */
export async function measureSchemaChange(
  pool: pg.Pool,
  tenants: readonly BenchTenant[],
  repetitions: number,
): Promise<{ row: number[]; schema: number[] }> {
  const row: number[] = []
  const schema: number[] = []
  const client = await pool.connect()
  try {
    for (let rep = 0; rep < repetitions; rep++) {
      const column = quoteIdent(`bench_ref_${rep}`)
      const index = quoteIdent(`finance_transaction_bench_ref_${rep}_idx`)
      const shared = async () => {
        const { ms } = await timed(() =>
          client.query(
            `alter table public.finance_transaction add column ${column} varchar(40);
             create index ${index} on public.finance_transaction (tenant_id, ${column})`,
          ),
        )
        row.push(ms)
      }
      const perSchema = async () => {
        const { ms } = await timed(async () => {
          for (const t of tenants) {
            const table = `${quoteIdent(t.schema)}.finance_transaction`
            await client.query(
              `begin; alter table ${table} add column ${column} varchar(40);
               create index ${index} on ${table} (${column}); commit`,
            )
          }
        })
        schema.push(ms)
      }
      if (rep % 2 === 0) {
        await shared()
        await perSchema()
      } else {
        await perSchema()
        await shared()
      }
    }
  } finally {
    client.release()
  }
  return { row, schema }
}
