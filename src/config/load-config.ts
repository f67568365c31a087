import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { ConfigError } from '../errors/index.js'
import { CONFIG_KEYS, type ConfigKey, type RowtenancyConfig } from './config-keys.js'

/** Config file names looked for, in order, when none is named. @example `CONFIG_FILES[0] // 'rowtenancy.config.json'` */
export const CONFIG_FILES = Object.freeze([
  'rowtenancy.config.json',
  'rowtenancy.config.mjs',
  'rowtenancy.config.js',
])

/**
 * Where configuration comes from. Later sources win: defaults, then the file,
 * then the environment, then flags.
 *
 * @example
 * ```ts
 * await loadConfig({ cwd: process.cwd(), flags: { databaseUrl: 'postgres://localhost/app' } })
 * ```
 */
export interface LoadConfigOptions {
  readonly cwd?: string
  /** A config file to read; when given it must exist. */
  readonly file?: string
  /** Values from CLI flags, keyed by config key. `undefined` values are ignored. */
  readonly flags?: Partial<Record<keyof RowtenancyConfig, unknown>>
  /** The environment to read; `process.env` by default. */
  readonly env?: Record<string, string | undefined>
}

/**
 * Loads and validates the configuration. An unknown key, a value of the wrong
 * type, or an unreadable file is a `ConfigError` that names the key and the fix.
 *
 * @example
 * ```ts
 * const config = await loadConfig()
 * config.tenantIdType // 'bigint'
 * ```
 */
export async function loadConfig(options: LoadConfigOptions = {}): Promise<RowtenancyConfig> {
  const cwd = options.cwd ?? process.cwd()
  const env = options.env ?? process.env
  const merged: Record<string, unknown> = {}
  for (const k of CONFIG_KEYS) if (k.default !== undefined) merged[k.key] = k.default

  const fromFile = await readConfigFile(cwd, options.file)
  if (fromFile) {
    for (const [key, value] of Object.entries(fromFile.values)) {
      const spec = CONFIG_KEYS.find((k) => k.key === key)
      if (!spec) {
        const hint = closest(key)
        throw new ConfigError(
          `Unknown key ${JSON.stringify(key)} in ${fromFile.path}.` +
            (hint ? ` Did you mean ${JSON.stringify(hint)}?` : '') +
            ` Known keys: ${CONFIG_KEYS.map((k) => k.key).join(', ')}.`,
        )
      }
      merged[key] = coerce(spec, value, `${key} in ${fromFile.path}`)
    }
  }
  for (const spec of CONFIG_KEYS) {
    const raw = env[spec.env]
    if (raw !== undefined && raw !== '') merged[spec.key] = coerce(spec, raw, `$${spec.env}`)
  }
  for (const [key, value] of Object.entries(options.flags ?? {})) {
    if (value === undefined) continue
    const spec = CONFIG_KEYS.find((k) => k.key === key)
    if (!spec) {
      throw new ConfigError(
        `Unknown option ${JSON.stringify(key)}. Known keys: ${CONFIG_KEYS.map((k) => k.key).join(', ')}.`,
      )
    }
    merged[key] = coerce(spec, value, spec.flag)
  }
  return Object.freeze(merged) as unknown as RowtenancyConfig
}

async function readConfigFile(
  cwd: string,
  named: string | undefined,
): Promise<{ path: string; values: Record<string, unknown> } | undefined> {
  let path: string | undefined
  if (named) {
    path = resolve(cwd, named)
    if (!existsSync(path)) {
      throw new ConfigError(`Config file ${path} does not exist. Check the \`config\` path.`)
    }
  } else {
    path = CONFIG_FILES.map((f) => resolve(cwd, f)).find((p) => existsSync(p))
    if (!path) return undefined
  }
  let values: unknown
  try {
    if (path.endsWith('.json')) {
      values = JSON.parse(await readFile(path, 'utf8'))
    } else if (/\.(m?js|cjs)$/.test(path)) {
      const mod = await import(pathToFileURL(path).href)
      values = mod.default ?? mod
    } else {
      throw new ConfigError(
        `Cannot read ${path}: use a .json, .mjs or .js config file (TypeScript configs need a loader).`,
      )
    }
  } catch (err) {
    if (err instanceof ConfigError) throw err
    throw new ConfigError(
      `Cannot read config file ${path}: ${(err as Error)?.message ?? String(err)}. ` +
        'Fix the file (a .json file holds one JSON object; a .js / .mjs file runs and must `export default { ... }`), ' +
        'or name another with `config`.',
      { cause: err },
    )
  }
  if (typeof values !== 'object' || values === null || Array.isArray(values)) {
    throw new ConfigError(
      `${path} must hold an object of settings, e.g. { "databaseUrl": "postgres://localhost/app" } ` +
        '(a .js / .mjs file: export default { ... }).',
    )
  }
  return { path, values: values as Record<string, unknown> }
}

function coerce(spec: ConfigKey, value: unknown, where: string): unknown {
  const bad = (expected: string) =>
    new ConfigError(`${where} must be ${expected}, got ${JSON.stringify(value)}.`)
  if (Array.isArray(spec.type)) {
    if (typeof value !== 'string' || !spec.type.includes(value)) {
      throw bad(`one of ${spec.type.join(', ')}`)
    }
    return value
  }
  switch (spec.type) {
    case 'string':
      if (typeof value !== 'string' || value.length === 0) throw bad('a non-empty string')
      return value
    case 'integer': {
      const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value
      if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1)
        throw bad('a positive integer')
      return n
    }
    case 'boolean':
      if (typeof value === 'boolean') return value
      if (value === 'true' || value === '1') return true
      if (value === 'false' || value === '0') return false
      throw bad('true or false')
    case 'list': {
      const list = typeof value === 'string' ? value.split(',').map((s) => s.trim()) : value
      if (!Array.isArray(list) || !list.every((s) => typeof s === 'string' && s.length > 0)) {
        throw bad('a list of names')
      }
      return Object.freeze([...list])
    }
    default:
      return value
  }
}

function closest(key: string): string | undefined {
  let best: { key: string; d: number } | undefined
  for (const k of CONFIG_KEYS) {
    const d = distance(key.toLowerCase(), k.key.toLowerCase())
    if (!best || d < best.d) best = { key: k.key, d }
  }
  return best && best.d <= 3 ? best.key : undefined
}

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1))
      prev = tmp
    }
  }
  return row[b.length]!
}
