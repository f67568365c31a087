import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import type { FeatureResult } from './results.js'

/**
 * The per-feature benchmarks the report includes, in order, when their file exists.
 *
 * @example
 * ```ts
 * FEATURE_BENCHES.includes('plugin') // true
 * ```
 */
export const FEATURE_BENCHES: readonly string[] = Object.freeze([
  'migrate',
  'plugin',
  'rls',
  'http',
  'orms',
])

/**
 * A benchmark's output as the report keeps it: every line, trailing spaces
 * and runs of blank lines removed, at most 80 lines (the rest is in its log).
 *
 * @example
 * ```ts
 * outputLines('setting up\n\n\nname  ratio\nx  1.02\n') // ['setting up', '', 'name  ratio', 'x  1.02']
 * ```
 */
export function outputLines(stdout: string): string[] {
  const lines = stdout.split('\n').map((l) => l.trimEnd())
  const kept = lines.filter((l, i) => l.length > 0 || (i > 0 && lines[i - 1]!.length > 0))
  while (kept[0] === '') kept.shift()
  while (kept.length > 0 && kept[kept.length - 1] === '') kept.pop()
  return kept.slice(0, 80)
}

/**
 * The last line of `stdout` that parses as a JSON object, if any: a benchmark
 * that prints one gives the report machine-readable figures.
 *
 * @example
 * ```ts
 * jsonLine('text\n{"ratio":1.02}\n') // { ratio: 1.02 }
 * ```
 */
export function jsonLine(stdout: string): unknown {
  const lines = stdout.split('\n').reverse()
  for (const line of lines) {
    const t = line.trim()
    if (!t.startsWith('{') || !t.endsWith('}')) continue
    try {
      return JSON.parse(t)
    } catch {}
  }
  return undefined
}

/**
 * Runs `bench/<name>.ts` as a child process (`tsx`, with `--quick` when asked,
 * the given environment) and keeps its output; a failure or a timeout is
 * reported, not thrown.
 *
 * @example
 * ```ts
 * const f = await runFeatureBench('/work/main', 'plugin', { quick: true, env: process.env, timeoutMs: 120_000 })
 * ```
 */
export async function runFeatureBench(
  root: string,
  name: string,
  options: { quick: boolean; env: NodeJS.ProcessEnv; timeoutMs: number },
): Promise<FeatureResult> {
  const started = performance.now()
  const tsx = join(root, 'node_modules', '.bin', 'tsx')
  const args = [join('bench', `${name}.ts`), ...(options.quick ? ['--quick'] : [])]
  return new Promise((resolve) => {
    let stdout = ''
    let stderr = ''
    const child = spawn(tsx, args, {
      cwd: root,
      env: options.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    const timer = setTimeout(() => child.kill('SIGINT'), options.timeoutMs)
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    let done = false
    const finish = (code: number | null, error?: string) => {
      if (done) return
      done = true
      clearTimeout(timer)
      const ms = performance.now() - started
      const ok = code === 0 && error === undefined
      const json = jsonLine(stdout)
      const failure =
        error ??
        (ok
          ? undefined
          : code === null
            ? `stopped after ${Math.round(options.timeoutMs / 1000)} s`
            : `exit code ${code}: ${stderr.trim().split('\n').slice(-3).join(' / ')}`)
      resolve({
        name,
        quick: options.quick,
        ok,
        ms,
        lines: outputLines(stdout),
        ...(json === undefined ? {} : { json }),
        ...(failure === undefined ? {} : { error: failure }),
      })
    }
    child.on('error', (err) => finish(null, err.message))
    child.on('exit', (code) => finish(code))
  })
}

/**
 * The per-feature benchmarks that exist under `root/bench`.
 *
 * @example
 * ```ts
 * availableFeatureBenches('/work/main') // ['plugin', 'http']
 * ```
 */
export function availableFeatureBenches(root: string): string[] {
  return FEATURE_BENCHES.filter((name) => existsSync(join(root, 'bench', `${name}.ts`)))
}
