import type pg from 'pg'
import { runPipelined } from '../../src/db/pipelined-query.js'
import { quoteIdent } from '../../src/sql/quote.js'
import type { BenchTenant } from './build.js'
import { timed } from './stats.js'

type Balances = Map<string, string>

/** @internal */
function toBalances(rows: { tenant_id: string | number; balance: string | null }[]): Balances {
  return new Map(rows.map((r) => [String(r.tenant_id), r.balance ?? '0']))
}

/** @internal */
function sameBalances(a: Balances, b: Balances): boolean {
  if (a.size !== b.size) return false
  for (const [k, v] of a) if (Number(b.get(k)) !== Number(v)) return false
  return true
}

/**
 * The cross-tenant report, sum of balances (transaction amounts) per tenant,
 * three ways on the same data, `repetitions` times each (rotating the order):
 * - `row`: one `GROUP BY tenant_id` on the shared table;
 * - `union`: one statement, a `UNION ALL` of one branch per tenant schema
 *   (may fail with "out of shared memory" when the branches need more locks
 *   than `max_locks_per_transaction` allows: reported, not fatal);
 * - `loop`: one query per schema on one connection, `search_path` set in the
 *   same round trip.
 *
 * Runs on the owner pool (the report role sees every tenant). The three answers
 * are compared: a mismatch throws, so the timings are of correct reports.
 *
 * @example
 * ```ts
 * const r = await measureCrossTenantReport(pool, tenants, 3)
 * r.row // [38.1, 35.9, 36.4]
 * ```
 */
export async function measureCrossTenantReport(
  pool: pg.Pool,
  tenants: readonly BenchTenant[],
  repetitions: number,
): Promise<{ row: number[]; union: number[]; unionError?: string; loop: number[] }> {
  const rowSql = `select tenant_id, sum(amount)::text as balance
                    from public.finance_transaction group by tenant_id`
  const unionSql = tenants
    .map(
      (t) =>
        `select ${Number(t.id)}::bigint as tenant_id, sum(amount)::text as balance from ${quoteIdent(t.schema)}.finance_transaction`,
    )
    .join('\nunion all\n')
  const out = { row: [] as number[], union: [] as number[], loop: [] as number[] }
  let unionError: string | undefined
  const client = await pool.connect()
  try {
    const byRow = async () => {
      const { ms, value } = await timed(() => client.query(rowSql))
      out.row.push(ms)
      return toBalances(value.rows)
    }
    const byUnion = async () => {
      if (unionError) return undefined
      try {
        const { ms, value } = await timed(() => client.query(unionSql))
        out.union.push(ms)
        return toBalances(value.rows)
      } catch (err) {
        unionError = (err as Error).message
        return undefined
      }
    }
    const byLoop = async () => {
      const rows: { tenant_id: number; balance: string | null }[] = []
      const { ms } = await timed(async () => {
        for (const t of tenants) {
          const result = await runPipelined(
            client,
            [
              {
                text: "select set_config('search_path', $1, false)",
                values: [quoteIdent(t.schema)],
              },
            ],
            { text: 'select sum(amount)::text as balance from finance_transaction' },
          )
          rows.push({ tenant_id: t.id, balance: result.rows[0]?.balance ?? null })
        }
      })
      await client.query('reset search_path')
      out.loop.push(ms)
      return toBalances(rows)
    }
    const ways = [byRow, byUnion, byLoop]
    for (let rep = 0; rep < repetitions; rep++) {
      const answers: Balances[] = []
      for (let i = 0; i < ways.length; i++) {
        const answer = await ways[(rep + i) % ways.length]!()
        if (answer) answers.push(answer)
      }
      if (answers.some((a) => !sameBalances(a, answers[0]!))) {
        throw new Error(
          'the three cross-tenant reports disagree: the layouts do not hold the same data',
        )
      }
    }
  } finally {
    client.release()
  }
  return unionError === undefined ? out : { ...out, unionError }
}
