import { readFile } from 'node:fs/promises'
import pg from 'pg'
import { runPipelined, type Statement } from '../../src/db/pipelined-query.js'
import { RLS_SETTING } from '../../src/schema/rls-policy.js'
import { quoteIdent } from '../../src/sql/quote.js'
import type { BenchTenant } from './build.js'
import type { MemoryProbe } from './results.js'

/** @internal */
async function contextsBytes(client: pg.Client): Promise<number> {
  const { rows } = await client.query(
    'select sum(total_bytes)::bigint as b from pg_backend_memory_contexts',
  )
  return Number(rows[0].b)
}

/** `RssAnon` and `VmRSS` of a local PostgreSQL backend, or nulls when it is not readable here. @internal */
async function residentBytes(pid: number): Promise<{ anon: number | null; rss: number | null }> {
  try {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8')
    if (!cmdline.includes('postgres')) return { anon: null, rss: null }
    const status = await readFile(`/proc/${pid}/status`, 'utf8')
    const kb = (key: string) => {
      const m = status.match(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm'))
      return m ? Number(m[1]) * 1024 : null
    }
    return { anon: kb('RssAnon'), rss: kb('VmRSS') }
  } catch {
    return { anon: null, rss: null }
  }
}

/**
 * Opens one fresh connection as the runtime role, touches every tenant once
 * (a point read of `finance_account` and of `finance_transaction`, bound the
 * layout's way), and reads what the server backend holds: the total of
 * `pg_backend_memory_contexts` (private memory: catalog and relation caches,
 * plans), and `RssAnon` / `VmRSS` from `/proc/<pg_backend_pid()>/status` when
 * the server runs on this machine.
 *
 * @example
 * ```ts
 * const probe = await probeBackendMemory(runtimeUrl, tenants, 'schema')
 * probe.contextsBytes // 41_000_000
 * ```
 */
export async function probeBackendMemory(
  url: string,
  tenants: readonly BenchTenant[],
  layout: 'row' | 'schema',
): Promise<MemoryProbe> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    const { rows } = await client.query('select pg_backend_pid() as pid')
    const pid = Number(rows[0].pid)
    const contextsBytesBefore = await contextsBytes(client)
    const account = 'select id, name from finance_account where id = $1'
    const transaction = 'select id, amount from finance_transaction where id = $1'
    for (const t of tenants) {
      const bind: Statement =
        layout === 'row'
          ? { text: `select set_config('${RLS_SETTING}', $1, true)`, values: [String(t.id)] }
          : { text: "select set_config('search_path', $1, true)", values: [quoteIdent(t.schema)] }
      await runPipelined(client, [bind], { text: account, values: [1] })
      await runPipelined(client, [bind], { text: transaction, values: [1] })
    }
    const after = await contextsBytes(client)
    const { anon, rss } = await residentBytes(pid)
    return { contextsBytes: after, contextsBytesBefore, rssAnonBytes: anon, vmRssBytes: rss }
  } finally {
    await client.end()
  }
}
