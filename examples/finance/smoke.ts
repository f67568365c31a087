import { request } from 'node:http'
import pg from 'pg'
import { quoteIdent } from '../../src/entries/index.js'

/**
 * One request the demo prints as a `curl` line (and `--smoke` sends itself).
 *
 * @example
 * ```ts
 * const r: DemoRequest = { label: 'acme lists its accounts', method: 'GET', path: '/accounts',
 *   headers: { 'X-Tenant-ID': 'acme' } }
 * ```
 */
export interface DemoRequest {
  readonly label: string
  readonly method: 'GET' | 'POST'
  readonly path: string
  readonly headers: Readonly<Record<string, string>>
  readonly body?: unknown
}

/**
 * What the curl lines are about: the API's URL, the admin token, and two tenants.
 *
 * @example
 * ```ts
 * const info: DemoInfo = { url: 'http://127.0.0.1:4000', adminToken: 't',
 *   first: { slug: 'acme', domain: 'acme.localhost', schema: 'tenant_acme', accountId: '1' }, second: ... }
 * ```
 */
export interface DemoInfo {
  readonly url: string
  readonly adminToken: string
  readonly first: DemoTenant
  readonly second: DemoTenant
}

/** One tenant of {@link DemoInfo}. @example `{ slug: 'acme', domain: 'acme.localhost', schema: 'tenant_acme', accountId: '1' }` */
export interface DemoTenant {
  readonly slug: string
  readonly domain: string
  readonly schema: string
  readonly accountId: string
}

/**
 * The `curl` command of a request, ready to paste.
 *
 * @example
 * ```ts
 * curlLine('http://127.0.0.1:4000', { label: '', method: 'GET', path: '/accounts', headers: { 'X-Tenant-ID': 'acme' } })
 * // "curl -s -H 'X-Tenant-ID: acme' http://127.0.0.1:4000/accounts"
 * ```
 */
export function curlLine(url: string, r: DemoRequest): string {
  const parts = ['curl -s']
  if (r.method !== 'GET') parts.push(`-X ${r.method}`)
  for (const [k, v] of Object.entries(r.headers)) parts.push(`-H '${k}: ${v}'`)
  if (r.body !== undefined) {
    parts.push(`-H 'Content-Type: application/json' -d '${JSON.stringify(r.body)}'`)
  }
  parts.push(`${url}${r.path}`)
  return parts.join(' ')
}

/**
 * The requests the demo shows: two tenants by header, one by host, a write, a
 * balance, and the admin report.
 *
 * @example
 * ```ts
 * for (const r of demoRequests(info)) console.log(curlLine(info.url, r))
 * ```
 */
export function demoRequests(info: DemoInfo): DemoRequest[] {
  const { first: a, second: b } = info
  return [
    {
      label: `${a.slug} lists its accounts (by header)`,
      method: 'GET',
      path: '/accounts',
      headers: { 'X-Tenant-ID': a.slug },
    },
    {
      label: `${b.slug} lists its accounts (by header)`,
      method: 'GET',
      path: '/accounts',
      headers: { 'X-Tenant-ID': b.slug },
    },
    {
      label: `${b.slug} again, by host`,
      method: 'GET',
      path: '/accounts',
      headers: { Host: b.domain },
    },
    {
      label: `${a.slug}: balance of account ${a.accountId}`,
      method: 'GET',
      path: `/accounts/${a.accountId}/balance`,
      headers: { 'X-Tenant-ID': a.slug },
    },
    {
      label: `${a.slug} posts a transaction`,
      method: 'POST',
      path: `/accounts/${a.accountId}/transactions`,
      headers: { 'X-Tenant-ID': a.slug },
      body: { amount: '-42.50', description: 'Taxi to the airport' },
    },
    {
      label: `${a.slug} opens an account`,
      method: 'POST',
      path: '/accounts',
      headers: { 'X-Tenant-ID': a.slug },
      body: { name: 'Travel', currency: 'EUR' },
    },
    { label: 'no tenant named: refused', method: 'GET', path: '/accounts', headers: {} },
    {
      label: 'admin report across tenants (audited)',
      method: 'GET',
      path: '/admin/report',
      headers: { Authorization: `Bearer ${info.adminToken}` },
    },
  ]
}

/**
 * Sends a request with node:http (fetch would drop a `Host` header).
 *
 * @example
 * ```ts
 * const { status, json } = await send(info.url, demoRequests(info)[0])
 * ```
 */
export function send(url: string, r: DemoRequest): Promise<{ status: number; json: any }> {
  const payload = r.body === undefined ? undefined : JSON.stringify(r.body)
  const headers: Record<string, string> = { ...r.headers }
  if (payload !== undefined) headers['Content-Type'] = 'application/json'
  return new Promise((resolve, reject) => {
    const req = request(`${url}${r.path}`, { method: r.method, headers }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (d) => (text += d))
      res.on('end', () => {
        let json: unknown
        try {
          json = JSON.parse(text)
        } catch {
          json = text
        }
        resolve({ status: res.statusCode ?? 0, json })
      })
    })
    req.on('error', reject)
    req.end(payload)
  })
}

/** @internal */
const ids = (rows: readonly { id: string | number }[]) =>
  rows
    .map((r) => String(r.id))
    .sort()
    .join(',')

/**
 * Sends every demo request and checks the story: each tenant sees exactly its
 * legacy accounts (compared with its old schema), the host names the same tenant
 * as the header, a write lands, a request without a tenant is refused, another
 * tenant cannot see the new account, and the admin report sees every tenant and
 * writes an audit row.
 *
 * @example
 * ```ts
 * const { ok, lines } = await runSmoke(info, ownerUrl, 40)
 * ```
 */
export async function runSmoke(
  info: DemoInfo,
  ownerUrl: string,
  tenantCount: number,
): Promise<{ ok: boolean; lines: string[] }> {
  const owner = new pg.Pool({ connectionString: ownerUrl, max: 2 })
  const lines: string[] = []
  let ok = true
  const check = (pass: boolean, what: string) => {
    ok &&= pass
    lines.push(`  ${pass ? 'ok  ' : 'FAIL'} ${what}`)
  }
  try {
    const legacy = async (t: DemoTenant) =>
      (await owner.query(`select id::text as id from ${quoteIdent(t.schema)}.finance_account`)).rows
    const auditBefore = Number((await owner.query('select count(*) as n from audit_log')).rows[0].n)
    const answers: { status: number; json: any }[] = []
    for (const r of demoRequests(info)) {
      const res = await send(info.url, r)
      lines.push(
        `$ ${curlLine(info.url, r)}`,
        `  -> ${res.status} ${JSON.stringify(res.json).slice(0, 160)}`,
      )
      answers.push(res)
    }
    const [aList, bList, bHost, balance, posted, opened, anonymous, report] = answers
    const { first: a, second: b } = info
    check(
      aList!.status === 200 && ids(aList!.json.accounts) === ids(await legacy(a)),
      `${a.slug} sees exactly the accounts of its old schema ${a.schema}`,
    )
    check(
      bList!.status === 200 && ids(bList!.json.accounts) === ids(await legacy(b)),
      `${b.slug} sees exactly the accounts of its old schema ${b.schema}`,
    )
    check(
      bHost!.status === 200 && ids(bHost!.json.accounts) === ids(bList!.json.accounts),
      `Host ${b.domain} names the same tenant as the header`,
    )
    check(
      balance!.status === 200 && typeof balance!.json.balance === 'string',
      `${a.slug} reads a balance`,
    )
    check(
      posted!.status === 201 && opened!.status === 201,
      `${a.slug} writes a transaction and an account`,
    )
    check(anonymous!.status === 400, 'a request that names no tenant is refused (400)')
    const hidden = await send(info.url, {
      label: '',
      method: 'GET',
      path: `/accounts/${opened!.json.id}/balance`,
      headers: { 'X-Tenant-ID': b.slug },
    })
    check(
      hidden.status === 404,
      `${b.slug} cannot see ${a.slug}'s new account ${opened!.json.id} (404)`,
    )
    const auditAfter = Number((await owner.query('select count(*) as n from audit_log')).rows[0].n)
    check(
      report!.status === 200 && report!.json.totals?.tenants === tenantCount,
      `the admin report sees all ${tenantCount} tenants`,
    )
    check(
      auditAfter > auditBefore,
      `the admin report wrote ${auditAfter - auditBefore} audit row(s)`,
    )
  } finally {
    await owner.end()
  }
  return { ok, lines }
}
