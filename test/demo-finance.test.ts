import { execFileSync, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { serverUrl, urlFor } from './helpers/db.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

/**
 * Runs a TypeScript entry with tsx (or, with `npm`, an npm command exactly as the
 * README writes it) as a child process, with optional stdin; collects its output.
 */
function run(
  args: readonly string[],
  options: { env?: Record<string, string>; stdin?: string; npm?: boolean } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const [cmd, argv] = options.npm
      ? ['npm', args]
      : [process.execPath, ['--import', 'tsx', ...args]]
    const child = spawn(cmd, argv, {
      cwd: ROOT,
      env: { ...process.env, ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('error', reject)
    child.on('exit', (code) => resolve({ code, stdout, stderr }))
    child.stdin.end(options.stdin ?? '')
  })
}

/** True when util-linux `script` can give a child a pseudo-terminal. */
function hasScript(): boolean {
  try {
    execFileSync('script', ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/**
 * Drives `rowtenancy shell` on a pseudo-terminal (util-linux `script`): types
 * each line only once the prompt is back, then `.exit`.
 */
function driveTty(lines: readonly string[], env: Record<string, string>): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      'script',
      ['-qfec', `"${process.execPath}" --import tsx src/cli/main.ts shell`, '/dev/null'],
      {
        cwd: ROOT,
        env: { ...process.env, ...env },
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    )
    const queue = [...lines, '.exit']
    let all = ''
    let since = ''
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`the shell did not finish on the pseudo-terminal:\n${all}`))
    }, 45_000)
    child.stdout.on('data', (d: Buffer) => {
      all += d
      since += d
      if (
        /rowtenancy(\([^)]*\))?> /.test(since.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '')) &&
        queue.length > 0
      ) {
        since = ''
        child.stdin.write(`${queue.shift()}\r`)
      }
    })
    child.on('error', reject)
    child.on('exit', () => {
      clearTimeout(timer)
      resolve(all.replace(/\x1b\[[0-9;]*[A-Za-z]/g, ''))
    })
  })
}

describe('npm run demo, end to end on a small size', () => {
  const name = `rt_demo_${randomBytes(4).toString('hex')}`
  const role = `${name}_app`
  let demo: { code: number | null; stdout: string; stderr: string }
  let owner: pg.Pool

  beforeAll(async () => {
    // The README's command, with --keep so the REPL can be driven against the database afterwards.
    demo = await run(
      [
        'run',
        'demo',
        '--',
        '--smoke',
        '--keep',
        '--tenants',
        '5',
        '--scale',
        '0.05',
        '--database',
        name,
      ],
      { env: { DATABASE_URL: serverUrl() }, npm: true },
    )
    owner = new pg.Pool({ connectionString: urlFor(name), max: 2 })
  }, 120_000)

  afterAll(async () => {
    await owner?.end()
    const c = new pg.Client({ connectionString: serverUrl() })
    await c.connect()
    await c.query(`drop database if exists "${name}" with (force)`)
    await c.query(`drop role if exists "${role}"`)
    await c.end()
  })

  it('migrates, verifies, and serves each tenant only its own accounts (the smoke checks pass)', async () => {
    expect(demo.stderr + demo.stdout).not.toMatch(/demo failed/)
    expect(demo.code).toBe(0)
    expect(demo.stdout).toContain('smoke: all checks passed')
    expect(demo.stdout).not.toMatch(/FAIL/)
    // The real CLI ran: migration report and verify summary.
    expect(demo.stdout).toMatch(/5 tenants: 5 migrated, 0 skipped, 0 blocked, 0 failed/)
    expect(demo.stdout).toMatch(/5 tenants verified: 0 mismatched/)
    // Every legacy row arrived (composite ids kept), for every tenant.
    const { rows } = await owner.query(
      `select (select count(*) from finance_account)::int as shared,
              (select sum(n) from (
                 select count(*) as n from tenant_acme.finance_account union all
                 select count(*) from tenant_globex.finance_account union all
                 select count(*) from tenant_initech.finance_account union all
                 select count(*) from tenant_umbrella.finance_account union all
                 select count(*) from tenant_hooli.finance_account) s)::int as legacy`,
    )
    // +1: the smoke run opened the account "Travel" for acme.
    expect(rows[0].shared).toBe(rows[0].legacy + 1)
  })

  it('the app runs as a role RLS binds: no superuser, no BYPASSRLS, owns no table', async () => {
    const { rows } = await owner.query(
      `select r.rolsuper, r.rolbypassrls,
              (select count(*) from pg_class c where c.relowner = r.oid)::int as owned
         from pg_roles r where r.rolname = $1`,
      [role],
    )
    expect(rows[0]).toEqual({ rolsuper: false, rolbypassrls: false, owned: 0 })
  })

  it('the admin report went through allObjects and wrote an audit row', async () => {
    const { rows } = await owner.query(
      `select source, reason, actor, statement from audit_log where reason = 'finance admin report'`,
    )
    expect(rows.length).toBeGreaterThanOrEqual(1)
    expect(rows[0]).toMatchObject({ source: 'allObjects', actor: 'admin' })
    expect(rows[0].statement).toMatch(/from "tenants"/)
  })

  it.concurrent('rowtenancy shell: set a tenant, count its accounts, count all accounts across tenants', async () => {
    const line = demo.stdout.match(/DATABASE_URL='([^']+)' ROWTENANCY_ADMIN_DATABASE_URL='([^']+)'/)
    expect(line).not.toBeNull()
    const [, runtimeUrl, adminUrl] = line!
    const count = `.select(({ fn }) => fn.countAll().as('n')).executeTakeFirst()).n`
    const script = [
      '.tenant acme',
      `console.log('ACME', (await db.selectFrom('finance_account')${count})`,
      "setCurrentTenant('2')",
      `console.log('GLOBEX', (await db.selectFrom('finance_account')${count})`,
      `console.log('RAW', (await sql\`select count(*) as n from finance_account\`.execute(db)).rows[0].n)`,
      '.tenant -',
      `console.log('ALL', (await allObjects('shell: count all accounts').selectFrom('finance_account')${count})`,
      "await db.selectFrom('finance_account').selectAll().execute()",
    ].join('\n')
    const shell = await run(['src/cli/main.ts', 'shell'], {
      env: { DATABASE_URL: runtimeUrl!, ROWTENANCY_ADMIN_DATABASE_URL: adminUrl! },
      stdin: `${script}\n`,
    })
    expect(shell.code).toBe(0)
    const expected = (
      await owner.query(
        `select (select count(*) from finance_account where tenant_id = 1)::text as acme,
                (select count(*) from finance_account where tenant_id = 2)::text as globex,
                (select count(*) from finance_account)::text as total`,
      )
    ).rows[0]
    expect(shell.stdout).toContain(`ACME ${expected.acme}`)
    expect(shell.stdout).toContain(`GLOBEX ${expected.globex}`)
    // Raw SQL through the scoped db is bound to the tenant too (RLS on the runtime role).
    expect(shell.stdout).toContain(`RAW ${expected.globex}`)
    expect(shell.stdout).toContain(`ALL ${expected.total}`)
    expect(Number(expected.acme)).toBeLessThan(Number(expected.total))
    // No tenant: fail closed, not an unscoped read.
    expect(shell.stdout).toContain('MissingTenantError')
    const audit = await owner.query(
      `select actor from audit_log where reason = 'shell: count all accounts'`,
    )
    expect(audit.rows[0]?.actor).toMatch(/^shell:/)
  })

  it.concurrent('rowtenancy shell on the owner (RLS does not bind it): db refuses rather than read unisolated', async () => {
    const count = `.select(({ fn }) => fn.countAll().as('n')).executeTakeFirst()).n`
    const shell = await run(['src/cli/main.ts', 'shell', '--tenant', 'acme'], {
      env: { DATABASE_URL: urlFor(name) },
      stdin: `console.log('N', (await db.selectFrom('finance_account')${count})\n`,
    })
    expect(shell.stderr).toMatch(/RLS does not bind it/)
    expect(shell.stdout).toContain('UnsafeRoleError')
    expect(shell.stdout).not.toMatch(/^N \d/m)
  })

  it.skipIf(!hasScript()).concurrent(
    'rowtenancy shell on a pseudo-terminal: top-level await under the picked tenant',
    async () => {
      const [, runtimeUrl, adminUrl] = demo.stdout.match(
        /DATABASE_URL='([^']+)' ROWTENANCY_ADMIN_DATABASE_URL='([^']+)'/,
      )!
      const out = await driveTty(
        [
          '.tenant globex',
          "console.log('TTY', (await db.selectFrom('finance_account').select(({ fn }) => fn.countAll().as('n')).executeTakeFirst()).n)",
        ],
        { DATABASE_URL: runtimeUrl!, ROWTENANCY_ADMIN_DATABASE_URL: adminUrl! },
      )
      const { rows } = await owner.query(
        'select count(*)::text as n from finance_account where tenant_id = 2',
      )
      expect(out).toContain('tenant 2 (globex')
      expect(out).toContain(`TTY ${rows[0].n}`)
    },
  )
})
