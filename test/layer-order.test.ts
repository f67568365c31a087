/**
 * The layer order of src/ (lowest first). A folder imports only folders that
 * come before it in this list, never one after it; a new folder must be placed
 * here. README.md and docs/architecture.md state the same order.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve, sep } from 'node:path'
import { describe, expect, it } from 'vitest'

const LAYERS = [
  'errors',
  'sql',
  'context',
  'tenants',
  'schema',
  'audit',
  'db',
  'config',
  'pg',
  'migrate',
  'citus',
  'lifecycle',
  'doctor',
  'kysely',
  'tenancy',
  'http',
  'jobs',
  'drizzle',
  'prisma',
  'cli',
  'entries',
] as const

const src = join(import.meta.dirname, '..', 'src')
const IMPORT = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)['"](\.[^'"]+)['"]/g

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) return filesUnder(path)
    return name.endsWith('.ts') ? [path] : []
  })
}

function folderOf(path: string): string {
  return relative(src, path).split(sep)[0] as string
}

describe('layer order', () => {
  const files = filesUnder(src)

  it('every file of src/ sits in a folder that has a place in the order', () => {
    const unplaced = [
      ...new Set(
        files
          .map((f) => relative(src, f))
          .filter((f) => !LAYERS.includes(f.split(sep)[0] as never) || !f.includes(sep)),
      ),
    ]
    expect(unplaced).toEqual([])
  })

  it('no folder imports a folder above it', () => {
    const violations: string[] = []
    for (const file of files) {
      const from = folderOf(file)
      const rank = LAYERS.indexOf(from as never)
      for (const match of readFileSync(file, 'utf8').matchAll(IMPORT)) {
        const target = resolve(dirname(file), match[1] as string)
        if (!target.startsWith(src + sep)) continue
        const to = folderOf(target)
        if (to !== from && LAYERS.indexOf(to as never) > rank) {
          violations.push(`${relative(src, file)} (${from}) imports ${match[1]} (${to})`)
        }
      }
    }
    expect(violations).toEqual([])
  })
})

/**
 * Names are listed by hand once, in src/entries/*.ts. A folder's index.ts that only
 * re-exports (a barrel) lists its folder's files (`export * from './file.js'`), never
 * names, and never re-exports another folder; an index.ts with code of its own is a
 * module like any other.
 */
describe('folder barrels', () => {
  const RE_EXPORT = /^export\s+(?:type\s+)?(\*|\{[^}]*\})\s+from\s+'([^']+)'/gm
  const barrels = filesUnder(src).filter(
    (f) => f.endsWith(`${sep}index.ts`) && folderOf(f) !== 'entries',
  )

  it('re-export only files of their own folder, and list files rather than names', () => {
    const problems: string[] = []
    for (const file of barrels) {
      const text = readFileSync(file, 'utf8')
      const reExports = [...text.matchAll(RE_EXPORT)]
      const rest = text
        .replace(RE_EXPORT, '')
        .replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '')
        .trim()
      const onlyReExports = rest === ''
      for (const [, what, from] of reExports) {
        const name = relative(src, file)
        if (!from!.startsWith('./')) problems.push(`${name} re-exports another folder: ${from}`)
        else if (onlyReExports && what !== '*') problems.push(`${name} lists names of ${from}`)
      }
    }
    expect(problems).toEqual([])
  })
})
