/**
 * The kill -9 harness: run a TypeScript entry (the CLI or a script) as a child
 * process, SIGKILL it at a chosen output line, copy databases from a template so
 * a clean run and a crashed run start from the same state, and compare what they
 * leave behind.
 *
 * A typical crash test:
 * ```ts
 * const copies = templateCopies()
 * const crashUrl = await copies.copyOf(original.name, 'crash')
 * const run = (killAfterLines?: number) =>
 *   runCliChild(['migrate-to-row-tenancy', '--all', '--json', '--database-url', crashUrl], { killAfterLines })
 * const { kills } = await crashAt(run, [1, 7, 23], () => doneTenants(crashUrl)) // or migrateThroughKills
 * expect((await rerunUntilDone(run)).code).toBe(0)
 * afterAll(() => copies.dropAll())
 * ```
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { expect } from 'vitest'
import { quoteIdent } from '../../src/sql/quote.js'
import { serverUrl, urlFor } from './db.js'
import { schemaFingerprint } from './legacy-fixture.js'

/** The repository root (where `src/cli/main.ts` is resolved from). */
export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url))

/** How a child run ended. */
export interface ChildRun {
  /** Exit code, `null` when a signal ended it. */
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  /** Whether the harness sent SIGKILL (at `killAfterLines` or after `hangMs`). */
  readonly killed: boolean
  /** The complete lines the child wrote to stdout. */
  readonly lines: readonly string[]
  readonly stderr: string
}

/** Options of {@link runTsxChild}. */
export interface ChildOptions {
  /** SIGKILL the child as soon as it has written this many stdout lines. */
  readonly killAfterLines?: number
  /** Called for every complete stdout line (1-based `index`), e.g. to inject another fault. */
  readonly onLine?: (line: string, index: number, child: ChildProcess) => void
  /** SIGKILL a child that is still running after this long (a hang is a bug); 120 s by default. */
  readonly hangMs?: number
  readonly env?: NodeJS.ProcessEnv
  readonly cwd?: string
}

/** Runs `node --import tsx <script> ...args` and resolves when it exits (never rejects on exit codes). */
export function runTsxChild(
  script: string,
  args: readonly string[],
  options: ChildOptions = {},
): Promise<ChildRun> {
  const { killAfterLines, onLine, hangMs = 120_000, env, cwd = REPO_ROOT } = options
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
      cwd,
      env: env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    const lines: string[] = []
    let killed = false
    let buffered = ''
    let stderr = ''
    const kill = () => {
      if (killed || child.exitCode !== null) return
      killed = true
      child.kill('SIGKILL')
    }
    child.stdout.setEncoding('utf8')
    child.stdout.on('data', (chunk: string) => {
      buffered += chunk
      for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
        const line = buffered.slice(0, nl)
        buffered = buffered.slice(nl + 1)
        lines.push(line)
        onLine?.(line, lines.length, child)
        if (lines.length === killAfterLines) kill()
      }
    })
    child.stderr.on('data', (d) => {
      stderr += d
    })
    const hang = setTimeout(kill, hangMs)
    child.on('error', (e) => {
      clearTimeout(hang)
      reject(e)
    })
    child.on('exit', (code, signal) => {
      clearTimeout(hang)
      resolve({ code, signal, killed, lines, stderr })
    })
  })
}

/** Runs the rowtenancy CLI (`src/cli/main.ts`) as a child; see {@link runTsxChild}. */
export function runCliChild(
  args: readonly string[],
  options: ChildOptions = {},
): Promise<ChildRun> {
  return runTsxChild('src/cli/main.ts', args, options)
}

/**
 * Runs `run(killAt)` for every kill point; a run that ended before reaching its point
 * is not counted. After every kill, `progress()` is read (e.g. finished tenants), so a
 * test can assert that the kills landed mid-run.
 */
export async function crashAt(
  run: (killAfterLines: number) => Promise<ChildRun>,
  killPoints: readonly number[],
  progress: () => Promise<number>,
): Promise<{ kills: number[]; progressAfterKill: number[] }> {
  const kills: number[] = []
  const progressAfterKill: number[] = []
  for (const at of killPoints) {
    const r = await run(at)
    if (!r.killed) continue
    kills.push(at)
    progressAfterKill.push(await progress())
  }
  return { kills, progressAfterKill }
}

/** Reruns with no kill until a run exits 0, at most `attempts` times; returns the last run. */
export async function rerunUntilDone(
  run: (killAfterLines?: number) => Promise<ChildRun>,
  attempts = 4,
): Promise<ChildRun> {
  let last = await run()
  for (let i = 1; i < attempts && last.code !== 0; i++) last = await run()
  return last
}

/** One client on `url` (the run's server by default) for the length of `fn`. */
export async function withClient<T>(
  fn: (c: pg.Client) => Promise<T>,
  url: string = serverUrl(),
): Promise<T> {
  const c = new pg.Client({ connectionString: url })
  await c.connect()
  try {
    return await fn(c)
  } finally {
    await c.end()
  }
}

/** Databases copied from templates (`create database … template …`), dropped together. */
export interface TemplateCopies {
  /** Copies database `template` as `<template>_<label>`; returns its URL. */
  copyOf(template: string, label: string): Promise<string>
  /** Drops every copy made so far. */
  dropAll(): Promise<void>
}

/** A set of template copies on the run's server. */
export function templateCopies(): TemplateCopies {
  const names: string[] = []
  return {
    async copyOf(template, label) {
      const name = `${template}_${label.replace(/[^a-z0-9_]/gi, '_').toLowerCase()}`
      await withClient((c) =>
        c.query(`create database ${quoteIdent(name)} template ${quoteIdent(template)}`),
      )
      names.push(name)
      return urlFor(name)
    },
    async dropAll() {
      await withClient(async (c) => {
        for (const name of names.splice(0))
          await c.query(`drop database if exists ${quoteIdent(name)} with (force)`)
      })
    },
  }
}

/** How many tenants the migration ledger marks `done` (0 when there is no ledger yet). */
export function doneTenants(url: string): Promise<number> {
  return withClient(async (c) => {
    const { rows } = await c
      .query<{ n: number }>(
        `select count(*)::int as n from rowtenancy_migration where state = 'done'`,
      )
      .catch(() => ({ rows: [{ n: 0 }] }))
    return rows[0]!.n
  }, url)
}

/** A fingerprint (as text) of the source schemas' tables and rows, to show a run left them untouched. */
export async function sourcesFingerprint(url: string, schemas: readonly string[]): Promise<string> {
  const p = new pg.Pool({ connectionString: url, max: 1 })
  try {
    return JSON.stringify(await schemaFingerprint(p, schemas))
  } finally {
    await p.end()
  }
}

/**
 * Everything a migration to `public` writes, as comparable text: a fingerprint of the
 * rows per tenant and table, tenants, domains, sequences and ledger states, and
 * (as `sources`) the fingerprint of the source schemas.
 */
export async function migrationTargetState(
  url: string,
  tables: readonly string[],
  sources: readonly string[],
): Promise<Record<string, string>> {
  const pool = new pg.Pool({ connectionString: url, max: 2 })
  try {
    const out: Record<string, string> = {}
    for (const t of tables) {
      const { rows } = await pool.query(
        `select tenant_id::text as id, count(*)::text || ':' || sum(hashtextextended(x::text, 0))::text as f
           from public.${quoteIdent(t)} x group by 1 order by 1`,
      )
      for (const r of rows) out[`${t}@${r.id}`] = r.f
    }
    const q = async (sql: string) => JSON.stringify((await pool.query(sql)).rows)
    out.tenants = await q('select id, slug, name, status from tenants order by id')
    out.domains = await q('select * from tenant_domains order by domain')
    out.sequences = await q(
      `select sequencename, last_value from pg_sequences where schemaname = 'public' order by 1`,
    )
    out.ledger = await q(
      'select tenant_id, state, tables from rowtenancy_migration order by tenant_id',
    )
    out.sources = await sourcesFingerprint(url, sources)
    return out
  } finally {
    await pool.end()
  }
}

/**
 * `rowtenancy migrate-to-row-tenancy --all --jobs 2 --json ...extra` on `url` as a child,
 * SIGKILLed at `killAfterLines`.
 */
export function migrateChild(
  url: string,
  killAfterLines?: number,
  extra: readonly string[] = [],
): Promise<ChildRun> {
  return runCliChild(
    ['migrate-to-row-tenancy', '--all', '--jobs', '2', '--json', ...extra, '--database-url', url],
    { killAfterLines },
  )
}

/**
 * Kills the migration of `url` (CLI flags `extra`) at each kill point (JSON event lines), asserts that at
 * least three kills landed and that at least one landed mid-run (some of `tenants`
 * done, not all), then reruns until a run exits 0.
 */
export async function migrateThroughKills(
  url: string,
  killPoints: readonly number[],
  tenants: number,
  extra: readonly string[] = [],
): Promise<void> {
  const { kills, progressAfterKill } = await crashAt(
    (at) => migrateChild(url, at, extra),
    killPoints,
    () => doneTenants(url),
  )
  expect(kills.length).toBeGreaterThanOrEqual(3)
  expect(
    progressAfterKill.some((n) => n > 0 && n < tenants),
    String(progressAfterKill),
  ).toBe(true)
  const final = await rerunUntilDone(() => migrateChild(url, undefined, extra))
  expect(final.code, final.stderr).toBe(0)
}
