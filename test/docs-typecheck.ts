/**
 * Type-checks the TypeScript code blocks of README.md and docs/*.md against the
 * package's public entries (`npm run typecheck:docs`, part of `npm run typecheck`).
 *
 * Every ```ts block is compiled as a module of its own: `rowtenancy` and
 * `rowtenancy/<entry>` resolve to src/entries/*.ts, other packages to node_modules.
 * What a block takes as given from the application around it (a pool, an Express
 * app, the user's `DB` interface...) is declared once in docs/code-prelude.d.ts.
 * A block that cannot stand alone is fenced ```ts skip-check; the script prints how
 * many blocks were checked and how many skipped, and exits 1 on any error.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import ts from 'typescript'

const root = join(import.meta.dirname, '..')
const SKIP = 'skip-check'

interface Block {
  /** Virtual file name, next to the document (so node_modules resolve from the root). */
  readonly file: string
  readonly doc: string
  /** 1-based line of the first code line in the document. */
  readonly line: number
  readonly code: string
  readonly skipped: boolean
}

/** The ```ts blocks of one markdown document. */
export function codeBlocks(doc: string, text: string): Block[] {
  const blocks: Block[] = []
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(ts|typescript)\b(.*)$/.exec(lines[i]!)
    if (!open) continue
    const start = i + 1
    let end = start
    while (end < lines.length && !lines[end]!.startsWith('```')) end++
    blocks.push({
      file: join(root, `${doc}.block${blocks.length + 1}.ts`),
      doc,
      line: start + 1,
      code: lines.slice(start, end).join('\n'),
      skipped: open[2]!.includes(SKIP),
    })
    i = end
  }
  return blocks
}

function documents(): string[] {
  const docs = readdirSync(join(root, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`)
  return ['README.md', ...docs.sort()]
}

/** Compiles the blocks; returns one message per error, with the document and line. */
export function checkBlocks(blocks: readonly Block[]): string[] {
  const options: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    lib: ['lib.es2023.d.ts'],
    types: ['node'],
    strict: true,
    skipLibCheck: true,
    noEmit: true,
    allowImportingTsExtensions: true,
    baseUrl: root,
    paths: {
      rowtenancy: ['src/entries/index.ts'],
      'rowtenancy/*': ['src/entries/*.ts'],
    },
  }
  const byFile = new Map(blocks.map((b) => [b.file, b]))
  const host = ts.createCompilerHost(options)
  const fileExists = host.fileExists.bind(host)
  const readFile = host.readFile.bind(host)
  host.fileExists = (f) => byFile.has(f) || fileExists(f)
  host.readFile = (f) => byFile.get(f)?.code ?? readFile(f)
  const prelude = join(root, 'docs', 'code-prelude.d.ts')
  const program = ts.createProgram([prelude, ...byFile.keys()], options, host)
  const messages: string[] = []
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const text = ts.flattenDiagnosticMessageText(d.messageText, '\n')
    const block = d.file ? byFile.get(d.file.fileName) : undefined
    if (block && d.start !== undefined) {
      const { line } = d.file!.getLineAndCharacterOfPosition(d.start)
      messages.push(`${block.doc}:${block.line + line}: ${text}`)
    } else {
      const where = d.file ? relative(root, d.file.fileName) : 'options'
      messages.push(`${where}: ${text}`)
    }
  }
  return messages
}

const blocks = documents().flatMap((doc) => codeBlocks(doc, readFileSync(join(root, doc), 'utf8')))
const checked = blocks.filter((b) => !b.skipped)
const errors = checkBlocks(checked)
for (const e of errors) console.error(e)
console.log(
  `docs: ${checked.length} TypeScript blocks type-checked, ${blocks.length - checked.length} skipped (${SKIP})` +
    (errors.length ? `, ${errors.length} errors` : ''),
)
if (errors.length) process.exitCode = 1
