/**
 * The public surface is a conscious choice: every subpath in package.json maps to
 * one hand-written file in src/entries/, whose exported names (values and types)
 * must equal the committed list in test/public-entries/<entry>.json. A new export
 * means adding its name there. No entry exports a name whose declaration is
 * tagged `@internal`, and no entry uses `export *`.
 *
 * To add an entry: a line in package.json "exports" pointing at
 * ./dist/entries/<name>.js, the file src/entries/<name>.ts, and the list
 * test/public-entries/<name>.json (the failure message prints it).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import ts from 'typescript'
import { describe, expect, it } from 'vitest'

const root = join(import.meta.dirname, '..')
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  exports: Record<string, string | { types: string; default: string }>
}

const entries = Object.entries(pkg.exports)
  .filter(([subpath]) => subpath !== './package.json')
  .map(([subpath, target]) => {
    const file = typeof target === 'string' ? target : target.default
    const match = /^\.\/dist\/entries\/([a-z0-9-]+)\.js$/.exec(file)
    if (!match) throw new Error(`${subpath} must point at ./dist/entries/<name>.js, not ${file}`)
    const name = match[1] as string
    return { subpath, name, source: join(root, 'src', 'entries', `${name}.ts`) }
  })

const program = ts.createProgram(
  entries.map((e) => e.source),
  {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    strict: true,
    skipLibCheck: true,
    noEmit: true,
    types: ['node'],
  },
)
const checker = program.getTypeChecker()

function exportedNames(source: string): { names: string[]; internal: string[] } {
  const file = program.getSourceFile(source)
  if (!file) throw new Error(`cannot read ${source}`)
  const moduleSymbol = checker.getSymbolAtLocation(file)
  if (!moduleSymbol) return { names: [], internal: [] }
  const names: string[] = []
  const internal: string[] = []
  for (const symbol of checker.getExportsOfModule(moduleSymbol)) {
    names.push(symbol.name)
    const target = symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol
    const tagged = (target.declarations ?? []).some((d) =>
      ts.getJSDocTags(d).some((t) => t.tagName.text === 'internal'),
    )
    if (tagged) internal.push(symbol.name)
  }
  return { names: names.sort(), internal }
}

describe('public entries', () => {
  it('every package.json subpath has an entry file and a committed list, and nothing else does', () => {
    for (const e of entries) expect(existsSync(e.source), e.source).toBe(true)
    const lists = readdirSync(join(import.meta.dirname, 'public-entries'))
      .filter((f) => f.endsWith('.json'))
      .map((f) => f.slice(0, -'.json'.length))
      .sort()
    expect(lists).toEqual(entries.map((e) => e.name).sort())
  })

  for (const e of entries) {
    it(`${e.subpath === '.' ? 'rowtenancy' : `rowtenancy/${e.subpath.slice(2)}`} exports exactly its committed names`, () => {
      const { names, internal } = exportedNames(e.source)
      const listFile = join(import.meta.dirname, 'public-entries', `${e.name}.json`)
      const committed = existsSync(listFile)
        ? (JSON.parse(readFileSync(listFile, 'utf8')) as string[])
        : undefined
      expect(
        names,
        `names exported by src/entries/${e.name}.ts; if the change is intended, write them to ` +
          `test/public-entries/${e.name}.json:\n${JSON.stringify(names, null, 2)}`,
      ).toEqual(committed)
      expect(internal, 'names tagged @internal must not be exported').toEqual([])
      expect(readFileSync(e.source, 'utf8')).not.toMatch(/export\s*\*/)
    })
  }
})
